"""Wire format between the sentry (client) and the gofer (server).

One SOCK_SEQPACKET message per request and per reply: a dict in the stdlib's marshal
format (paths, link targets and raw structs travel as bytes), with at most one file
descriptor attached (SCM_RIGHTS). Each request carries an "id" that its reply repeats. A
request marked "later" may be answered {"later": True} first and its result afterwards
(a FIFO open waits in a gofer thread for the other end); meanwhile other replies go on,
and {"op": "cancel", "id": N} ends the wait, with no answer to either. marshal rather
than JSON: a round trip costs about 1 µs instead of 13, and both ends are this project's
own processes (marshal.loads does not execute what it decodes; a malformed message only
fails the request).
"""
from __future__ import annotations

import marshal
import os
import socket

MAX_MESSAGE = 1 << 16


def send(sock: socket.socket, obj: dict, fd: int | None = None) -> None:
    data = marshal.dumps(obj)
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
    try:
        msg = marshal.loads(data)
    except (ValueError, EOFError, TypeError):
        msg = None
    if not isinstance(msg, dict):
        msg = {"malformed": True}
    return msg, (fds[0] if fds else None)
