"""`exec`: a process added to a running sandbox by its sentry.

The process is forked by the sentry (so it is in the sandbox's PID namespace, cgroup and
seccomp filter). On the host it is represented by a proxy: a small process of ours that
holds the request's connection, forwards signals to it, and exits with its status, so the
pid that --pid-file names behaves as the exec'd process for containerd's shim and Docker.
The proxy is part of the sandbox: in the container's cgroup (the sentry adds one task to
pids.max for it while it waits), never the OOM killer's choice.
"""
from __future__ import annotations

import json
import os
import signal
import socket

from runsc_py.errors import UserError
from runsc_py.state import Container
from sentry import main as sentry_main
from sentry import spawner
from sentry.cgroup import Cgroup, CgroupError
from sentry.config import ProcessConfig

_FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
              signal.SIGUSR2, signal.SIGWINCH, signal.SIGCONT, signal.SIGTSTP)


def _join_sandbox(cgroup_path: str) -> None:
    if cgroup_path:
        try:
            Cgroup(cgroup_path).join(os.getpid())
        except CgroupError:
            pass  # the container is going: the exec request will say so
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("-1000")
    except OSError:
        pass  # not root: the proxy stays as likely a victim as any process


def _proxy(container: Container, proc: ProcessConfig, console_socket: str,
           report_w: int, cgroup_path: str) -> None:
    """Body of the proxy (never returns)."""
    code = 1
    reported = False
    try:
        _join_sandbox(cgroup_path)
        fd, path = sentry_main.control_path(container.dir)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
        os.close(fd)
        req = {"op": "exec", "process": spawner.process_to_wire(proc)}
        data = json.dumps(req).encode() + b"\n"
        if proc.terminal:
            # The sentry reaches no host path: it sends the pty's master over this.
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as console:
                try:
                    console.connect(console_socket)
                except OSError as e:
                    raise OSError(e.errno, f"console socket {console_socket}: "
                                  f"{e.strerror}") from None
                socket.send_fds(sock, [data], [console.fileno()])
        else:
            socket.send_fds(sock, [data], [0, 1, 2])
        # One reader for both replies: they may arrive in one recv.
        reader = sentry_main.LineReader(sock)
        reply = reader.read()
        if reply is None:  # closed unanswered: the sentry died (or stopped) meanwhile
            os.write(report_w, b"error:exec: the container stopped before the process ran")
            os._exit(1)
        if "pid" not in reply:
            os.write(report_w, ("error:" + str(reply.get("error", "exec failed"))).encode())
            os._exit(1)
        pid = reply["pid"]
        for sig in _FORWARDED:
            signal.signal(sig, lambda s, _f: _kill(pid, s))
        os.write(report_w, b"ok")
        reported = True
        os.close(report_w)
        spawner.release_stdio()  # the process has its own stdio (or the pty)
        # No exit message: the sentry went away with the process (SIGKILL'd sandbox).
        code = (reader.read() or {}).get("exit", 137)
    except (OSError, sentry_main.ProtocolError) as e:
        if not reported:
            msg = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            try:
                os.write(report_w, f"error:exec: {msg}".encode())
            except OSError:
                pass
    finally:
        # A forked child: whatever happened, never return into the CLI's code.
        os._exit(code if isinstance(code, int) else 1)


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def start(container: Container, proc: ProcessConfig, console_socket: str,
          cgroup_path: str = "") -> int:
    """Start the proxy and the process; the proxy's pid once the process runs."""
    report_r, report_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(report_r)
        _proxy(container, proc, console_socket, report_w, cgroup_path)
    os.close(report_w)
    try:
        msg = os.read(report_r, 65536).decode(errors="replace")
    finally:
        os.close(report_r)
    if msg != "ok":
        os.waitpid(pid, 0)
        raise UserError(msg.removeprefix("error:") or "exec failed")
    return pid
