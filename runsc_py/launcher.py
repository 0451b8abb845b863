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
from sentry.config import SandboxConfig


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
        os.waitpid(pid, 0)
        raise UserError(msg.removeprefix("error:") or "the sentry failed to start")
    _, gofer_pid, init_pid = msg.split(":")
    return pid, int(gofer_pid), int(init_pid)


def control(container: Container, request: dict) -> dict:
    """Send one request to the container's sentry over its control socket."""
    fd, path = sentry_main.control_path(container.dir)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(path)
            s.sendall(json.dumps(request).encode())
            s.shutdown(socket.SHUT_WR)
            reply = s.recv(65536)
    except OSError as e:
        raise UserError(f"container {container.id!r} is not reachable: {e.strerror}") from None
    finally:
        os.close(fd)
    return json.loads(reply or b"{}")


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (ProcessLookupError, OSError):
        return None


def kill_and_wait(state: dict, timeout: float = 10.0) -> None:
    """SIGKILL the sentry (its gofer and workload die with it) and wait for all three."""
    pids = [p for p in (state.get("pid"), state.get("gofer_pid"), state.get("init_pid")) if p]
    pidfds = [fd for fd in (_pidfd(p) for p in pids) if fd is not None]
    try:
        if process_start_time(state["pid"]) == state.get("pid_start"):
            try:
                os.kill(state["pid"], signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        for fd in pidfds:
            remaining = max(0.0, deadline - time.monotonic())
            select.select([fd], [], [], remaining)
    finally:
        for fd in pidfds:
            os.close(fd)
