"""`exec`: a process added to a running sandbox by its sentry.

The process is forked by the sentry (so it is in the sandbox's PID namespace, cgroup and
seccomp filter). On the host it is represented by a proxy: a small process of ours that
holds the request's connection, forwards signals to it, and exits with its status, so the
pid that --pid-file names behaves as the exec'd process for containerd's shim and Docker.
"""
from __future__ import annotations

import json
import os
import signal
import socket

from runsc_py.errors import UserError
from runsc_py.state import Container
from sentry import main as sentry_main
from sentry.config import ProcessConfig

_FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
              signal.SIGUSR2, signal.SIGWINCH, signal.SIGCONT, signal.SIGTSTP)


def _read_line(sock: socket.socket) -> dict:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return json.loads(data) if data.strip() else {}


def _proxy(container: Container, proc: ProcessConfig, console_socket: str,
           report_w: int) -> None:
    """Body of the proxy (never returns)."""
    code = 1
    try:
        fd, path = sentry_main.control_path(container.dir)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
        os.close(fd)
        req = {"op": "exec", "process": sentry_main.process_to_wire(proc),
               "console_socket": console_socket}
        data = json.dumps(req).encode() + b"\n"
        if proc.terminal:
            sock.sendall(data)
        else:
            socket.send_fds(sock, [data], [0, 1, 2])
        reply = _read_line(sock)
        if "pid" not in reply:
            os.write(report_w, ("error:" + reply.get("error", "exec failed")).encode())
            os._exit(1)
        pid = reply["pid"]
        for sig in _FORWARDED:
            signal.signal(sig, lambda s, _f: _kill(pid, s))
        os.write(report_w, b"ok")
        os.close(report_w)
        sentry_main.release_stdio()  # the process has its own stdio (or the pty)
        code = _read_line(sock).get("exit", 137)
    except OSError as e:
        try:
            os.write(report_w, f"error:exec: {e.strerror or e}".encode())
        except OSError:
            pass
    os._exit(code)


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def start(container: Container, proc: ProcessConfig, console_socket: str) -> int:
    """Start the proxy and the process; the proxy's pid once the process runs."""
    report_r, report_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(report_r)
        _proxy(container, proc, console_socket, report_w)
    os.close(report_w)
    try:
        msg = os.read(report_r, 65536).decode(errors="replace")
    finally:
        os.close(report_r)
    if msg != "ok":
        os.waitpid(pid, 0)
        raise UserError(msg.removeprefix("error:") or "exec failed")
    return pid
