"""Wire format between the sentry (client) and the gofer (server).

One SOCK_SEQPACKET message per request and per reply: a JSON object, with at most one
file descriptor attached (SCM_RIGHTS). Byte strings (paths, link targets, raw structs)
travel as str decoded with surrogateescape (paths) or latin-1 (raw structs).
"""
from __future__ import annotations

import json
import os
import socket

MAX_MESSAGE = 1 << 16


def send(sock: socket.socket, obj: dict, fd: int | None = None) -> None:
    data = json.dumps(obj).encode()
    if fd is None:
        sock.send(data)
    else:
        socket.send_fds(sock, [data], [fd])


def recv(sock: socket.socket) -> tuple[dict | None, int | None]:
    """One message and its descriptor; (None, None) when the peer has gone."""
    # CLOEXEC: a received descriptor must never leak into a child the receiver forks.
    data, fds, _flags, _addr = socket.recv_fds(sock, MAX_MESSAGE, 1, socket.MSG_CMSG_CLOEXEC)
    if not data:
        for fd in fds:
            os.close(fd)
        return None, None
    return json.loads(data), (fds[0] if fds else None)


def path_to_wire(path: bytes) -> str:
    return path.decode("utf-8", "surrogateescape")


def path_from_wire(path: str) -> bytes:
    return path.encode("utf-8", "surrogateescape")


def raw_to_wire(raw: bytes) -> str:
    return raw.decode("latin-1")


def raw_from_wire(raw: str) -> bytes:
    return raw.encode("latin-1")
