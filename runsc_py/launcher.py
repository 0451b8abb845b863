"""Starting and stopping a sandbox from the CLI: fork the sentry, wait for it to report
that the container is created, and wait for its processes to be gone."""
from __future__ import annotations

import json
import os
import select
import signal
import socket
import time

from runsc_py.errors import UserError
from runsc_py.state import Container, process_start_time
from sentry import main as sentry_main
from sentry.cgroup import Cgroup, CgroupError
from sentry.config import SandboxConfig

CONTROL_TIMEOUT = 30  # seconds


def launch(cfg: SandboxConfig, detach: bool) -> tuple[int, int, int]:
    """Fork the sentry; (sentry pid, gofer pid, init pid) once the container is created."""
    status_r, status_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(status_r)
        try:
            sentry_main.run(cfg, status_w, detach)
        finally:
            os._exit(1)
    os.close(status_w)
    # One atomic write (< PIPE_BUF); EOF if the sentry died first. Not read to EOF:
    # the sentry's children share the pipe until they exec.
    try:
        msg = os.read(status_r, 65536).decode(errors="replace")
    finally:
        os.close(status_r)
    if not msg.startswith("ok:"):
        _, status = os.waitpid(pid, 0)
        if msg:
            raise UserError(msg.removeprefix("error:"))  # the sentry cleaned up
        _remove_half_made(cfg)
        if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL and \
                cfg.resources.memory_limit:
            raise UserError("the sentry was killed while creating the sandbox: is the memory "
                            f"limit ({cfg.resources.memory_limit}) too small for it?")
        raise UserError("the sentry failed to start")
    _, gofer_pid, init_pid = msg.split(":")
    return pid, int(gofer_pid), int(init_pid)


def _remove_half_made(cfg: SandboxConfig) -> None:
    """The sentry died before it could report (an OOM kill in its own cgroup): end what it
    started there and remove the cgroup, which it had made or joined while empty."""
    try:
        cgroup = Cgroup(cfg.cgroup_path)
        if cgroup.frozen():
            return  # never ours: the sentry does not freeze while creating
        for _ in range(50):
            pids = cgroup.pids()
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.02)
        cgroup.remove()
    except CgroupError:
        pass


def control(container: Container, request: dict) -> dict:
    """Send one request to the container's sentry over its control socket."""
    fd, path = sentry_main.control_path(container.dir)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            # A sentry never takes long to answer, unless it is frozen (pause on cgroup v2
            # freezes the whole sandbox): then say so rather than wait for ever.
            s.settimeout(CONTROL_TIMEOUT)
            s.connect(path)
            s.sendall(json.dumps(request).encode() + b"\n")
            s.shutdown(socket.SHUT_WR)
            reply = sentry_main.LineReader(s).read()
    except TimeoutError:
        raise UserError(f"container {container.id!r} did not answer within "
                        f"{CONTROL_TIMEOUT} s (is it paused?)") from None
    except OSError as e:
        raise UserError(f"container {container.id!r} is not reachable: {e.strerror}") from None
    except sentry_main.ProtocolError as e:
        raise UserError(f"container {container.id!r}: {e}") from None
    finally:
        os.close(fd)
    if reply is None:  # closed without an answer: the sentry refused us or is stopping
        raise UserError(f"container {container.id!r} did not answer its control request")
    return reply


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (ProcessLookupError, OSError):
        return None


def kill_and_wait(state: dict, timeout: float = 10.0) -> None:
    """SIGKILL the sentry, if it still runs, and wait until it, its gofer and its workload
    (which die with it) are gone."""
    pid = state.get("pid") or 0
    if pid <= 0 or process_start_time(pid) != state.get("pid_start"):
        return  # gone already (or never started): never signal a recycled pid
    # Taken while the sentry lives: its children's pids cannot have been reused yet.
    pidfds = [fd for fd in (_pidfd(p) for p in (pid, state.get("gofer_pid"),
                                                  state.get("init_pid")) if p) if fd is not None]
    try:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + timeout
        for fd in pidfds:
            select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
    finally:
        for fd in pidfds:
            os.close(fd)


def freeze(state: dict, frozen: bool) -> None:
    try:
        Cgroup(state["cgroup_path"]).freeze(frozen)
    except (CgroupError, KeyError) as e:
        raise UserError(f"{'pause' if frozen else 'resume'}: {e}") from None


def sandbox_pids(state: dict) -> list[int]:
    """Host pids of the container's processes (those in its PID namespace)."""
    try:
        ns = os.stat(f"/proc/{state['init_pid']}/ns/pid").st_ino
    except (OSError, KeyError):
        return []
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}/ns/pid").st_ino == ns:
                    pids.append(int(name))
            except OSError:
                continue
    return sorted(pids)


def destroy(container: Container, state: dict) -> None:
    """Kill the sandbox if it runs, then remove its cgroup and its state directory."""
    if state.get("cgroup_path"):
        try:
            cgroup = Cgroup(state["cgroup_path"])
            if cgroup.frozen():
                cgroup.freeze(False)  # frozen processes cannot die
        except CgroupError:
            pass
    kill_and_wait(state)
    if state.get("cgroup_path"):
        try:
            cgroup = Cgroup(state["cgroup_path"])
            # Whatever outlived a sentry that died before this delete (its watchdog kills
            # the workload, but a delete must leave nothing in any case).
            for pid in cgroup.pids():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            cgroup.remove()
        except CgroupError as e:
            raise UserError(str(e)) from None
    container.remove_dir()
