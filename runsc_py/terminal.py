"""`run` with process.terminal: receive the pty master on a console socket of our own and
relay it to this terminal (raw mode), as runc's foreground mode does."""
from __future__ import annotations

import contextlib
import fcntl
import os
import select
import signal
import socket
import struct
import termios
import tty
from collections.abc import Iterator


@contextlib.contextmanager
def console_socket(state_dir: str) -> Iterator[tuple[str, socket.socket]]:
    path = os.path.join(state_dir, "console.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)
    try:
        yield path, listener
    finally:
        listener.close()
        with contextlib.suppress(OSError):
            os.unlink(path)


def receive_master(listener: socket.socket, timeout: float = 30) -> int:
    listener.settimeout(timeout)
    conn, _ = listener.accept()
    with conn:
        _msg, fds, _flags, _addr = socket.recv_fds(conn, 4096, 1, socket.MSG_CMSG_CLOEXEC)
    if not fds:
        raise OSError("no pty master received")
    if os.isatty(0):
        _copy_winsize(fds[0])  # before the workload starts and asks for it
    return fds[0]


def _copy_winsize(master: int) -> None:
    with contextlib.suppress(OSError):
        size = fcntl.ioctl(0, termios.TIOCGWINSZ, struct.pack("HHHH", 0, 0, 0, 0))
        fcntl.ioctl(master, termios.TIOCSWINSZ, size)


def relay(master: int, sentry_pid: int) -> None:
    """Copy stdin to the pty and the pty to stdout until the container exits."""
    saved = None
    if os.isatty(0):
        saved = termios.tcgetattr(0)
        tty.setraw(0)
        _copy_winsize(master)
        signal.signal(signal.SIGWINCH, lambda *_: _copy_winsize(master))
    pidfd = os.pidfd_open(sentry_pid)
    try:
        inputs = [master, pidfd, 0]
        while True:
            ready, _, _ = select.select(inputs, [], [])
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    data = b""
                if not data:
                    inputs.remove(master)
                else:
                    os.write(1, data)
            if 0 in ready:
                data = os.read(0, 65536)
                if data:
                    os.write(master, data)
                else:
                    inputs.remove(0)
            if pidfd in ready and master not in inputs:
                return
            if pidfd in ready:
                # Drain what the pty still holds, then stop.
                while select.select([master], [], [], 0.05)[0]:
                    try:
                        data = os.read(master, 65536)
                    except OSError:
                        break
                    if not data:
                        break
                    os.write(1, data)
                return
    finally:
        os.close(pidfd)
        os.close(master)
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
