"""Starting and stopping a sandbox from the CLI: fork the sentry, wait for it to report
that the container is created, and wait for its processes to be gone."""
from __future__ import annotations

import json
import logging
import os
import select
import signal
import socket
import time
from collections.abc import Callable

from runsc_py.errors import UserError
from runsc_py.state import Container, process_start_time
from sentry import main as sentry_main
from sentry.cgroup import Cgroup, CgroupError
from sentry.config import SandboxConfig
from syscalls import abi, host

CONTROL_TIMEOUT = 30  # seconds
log = logging.getLogger("runsc-py")



def launch(cfg: SandboxConfig, detach: bool,
           forked: Callable[[int], None] | None = None) -> tuple[int, int, int]:
    """Fork the sentry; (sentry pid, gofer pid, init pid) once the container is created.
    forked(pid) runs as soon as the sentry exists. If the sentry fails or dies before it
    reports, every process it made is killed and reaped before this raises."""
    # A subreaper while the sentry sets up: what it forked comes to us if it dies.
    host.prctl(abi.PR_SET_CHILD_SUBREAPER, 1)
    try:
        status_r, status_w = os.pipe()
        go_r, go_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(status_r)
            os.close(go_w)
            _sentry(cfg, status_w, go_r, detach)
        os.close(status_w)
        os.close(go_r)
        try:
            try:
                if forked is not None:
                    forked(pid)
                os.write(go_w, b"g")
            finally:
                os.close(go_w)
            # One atomic write (< PIPE_BUF); EOF if the sentry died first. Not read to EOF:
            # the sentry's children share the pipe until they exec.
            msg = os.read(status_r, 65536).decode(errors="replace")
        except BaseException:
            _kill_children()
            raise
        finally:
            os.close(status_r)
        if not msg.startswith("ok:"):
            _, status = os.waitpid(pid, 0)
            _kill_children()  # what a sentry that died left: re-parented to us
            if msg:
                raise UserError(msg.removeprefix("error:"))  # the sentry cleaned up
            # It died before it could report (an OOM kill in its own cgroup, a SIGKILL):
            # its processes are reaped, so the cgroup is ours if it is empty.
            remove_cgroup_if_empty(cfg.cgroup_path)
            if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL and \
                    cfg.resources.memory_limit:
                raise UserError("the sentry was killed while creating the sandbox: is the "
                                f"memory limit ({cfg.resources.memory_limit}) too small for "
                                "it?")
            raise UserError("the sentry failed to start")
        _, gofer_pid, init_pid = msg.split(":")
        return pid, int(gofer_pid), int(init_pid)
    finally:
        host.prctl(abi.PR_SET_CHILD_SUBREAPER, 0)


def _sentry(cfg: SandboxConfig, status_w: int, go_r: int, detach: bool) -> None:
    """Body of the forked sentry (never returns)."""
    try:
        # Only once the command recorded our pid: a sentry that the command, killed in
        # between, could not record would be found by no `delete`.
        if os.read(go_r, 1) != b"g":
            os._exit(1)
        os.close(go_r)
        # It exits by itself unless it raises: then it is confined (no kill, no rmdir),
        # and its exit is what ends the sandbox (the watchdog); the cgroup and state
        # directory wait for `delete --force`, which finds this pid in creating.json.
        sentry_main.run(cfg, status_w, detach)
    finally:
        os._exit(1)


def children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                found += [int(x) for x in f.read().split()]
        except OSError:
            continue
    return found


def descendants(pid: int) -> list[int]:
    found, todo = [], children(pid)
    while todo:
        p = todo.pop()
        found.append(p)
        todo += children(p)
    return found


def _kill_children() -> None:
    """Kill and reap every child (a subreaper's: the sentry and what it orphaned)."""
    while kids := children(os.getpid()):
        for p in kids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for p in kids:
            try:
                os.waitpid(p, 0)
            except ChildProcessError:
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


def _live(pid: int, start: int | None) -> int | None:
    """A pidfd of pid if it is still the process that started at start."""
    if not pid or pid <= 0 or start is None:
        return None
    fd = _pidfd(pid)
    if fd is not None and process_start_time(pid) != start:
        os.close(fd)  # a recycled pid (or a zombie): not ours
        return None
    return fd


def kill_and_wait(state: dict, timeout: float = 10.0) -> None:
    """SIGKILL the sandbox's processes and wait until they are gone: the sentry and, found
    generically, whatever it forked (gofer, watchdog, workload, exec'd processes, ...), also
    after the sentry died (recorded at create), and everything in the container's cgroup."""
    # pidfds first, taken while each is verified: a pid recycled later is never signalled.
    pidfds: list[int] = []
    sentry = _live(state.get("pid") or 0, state.get("pid_start"))
    if sentry is not None:
        pidfds.append(sentry)
        pidfds += [fd for p in descendants(state["pid"])
                   if (fd := _live(p, process_start_time(p))) is not None]
    for p, start in state.get("sandbox") or ():
        if (fd := _live(p, start)) is not None:
            pidfds.append(fd)
    try:
        for fd in pidfds:  # the sentry first: nothing it does races the rest
            try:
                signal.pidfd_send_signal(fd, signal.SIGKILL)
            except OSError:
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
    cgroup = Cgroup(state["cgroup_path"]) if state.get("cgroup_path") else None
    if cgroup is not None:
        try:
            if cgroup.frozen():
                cgroup.freeze(False)  # frozen processes cannot die
        except CgroupError:
            pass
    kill_and_wait(state)
    if cgroup is not None:
        try:
            # Whatever is still in it (the cgroup is the container's own: create refuses
            # one that has processes).
            for _ in range(3):
                pids = cgroup.pids()
                if not pids:
                    break
                kill_and_wait({"sandbox": [[p, process_start_time(p)] for p in pids]})
            cgroup.remove()
        except CgroupError as e:
            raise UserError(str(e)) from None
    container.remove_dir()


def remove_cgroup_if_empty(cgroup_path: str) -> None:
    """After a failed create whose processes are all reaped: remove the cgroup if we made
    it (one that still has processes is someone else's: left alone)."""
    try:
        Cgroup(cgroup_path).remove(wait=False)
    except CgroupError:
        pass


def destroy_partial(container: Container) -> None:
    """delete --force of a state directory without state.json (its create or delete was
    cut short): kill what the creating record names, remove the cgroup once its processes
    are gone (without killing what is in it: the create may have found another's), and the
    directory."""
    state = container.load_partial()
    kill_and_wait(state)
    if state.get("cgroup_path"):
        try:
            Cgroup(state["cgroup_path"]).remove()
        except CgroupError as e:
            log.warning("%s", e)
    container.remove_dir()
