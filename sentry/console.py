"""Terminals: a pty from the container's own devpts, its master sent over a console socket
(SCM_RIGHTS, as runc sends it to containerd's shim and Docker)."""
from __future__ import annotations

import fcntl
import os
import socket
import struct
import termios

from gofer.client import GoferClient

TIOCGPTPEER = 0x5441
TIOCSPTLCK = 0x40045431  # _IOW("T", 0x31, int): not in Python's termios


def open_pty(gofer: GoferClient, size: tuple[int, int] | None) -> tuple[int, int]:
    """(master, slave) of a new pty in the container's /dev/pts."""
    master = gofer.open(b"/dev/ptmx", os.O_RDWR | os.O_NOCTTY)
    try:
        fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
        # The slave straight from the master: no path lookup that could be raced.
        slave = fcntl.ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
        if size and size[0] and size[1]:
            fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))
    except OSError:
        os.close(master)
        raise
    return master, slave


def send_master(console_socket: str | int, master: int) -> None:
    """To the console socket's path, or over a connection to it (a descriptor)."""
    if isinstance(console_socket, int):
        with socket.socket(fileno=os.dup(console_socket)) as s:
            socket.send_fds(s, [b"/dev/ptmx"], [master])
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(console_socket)
        socket.send_fds(s, [b"/dev/ptmx"], [master])
