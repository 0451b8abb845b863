"""The sentry's side of the gofer connection."""
from __future__ import annotations

import errno
import os
import socket

from gofer import protocol


class GoferGone(Exception):
    """The gofer process has exited: the sandbox cannot continue."""


class GoferClient:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def call(self, op: str, creds: tuple | None = None, fd: int | None = None,
             **args) -> tuple:
        """Run op in the gofer; (result, fd or None). Raises OSError with the gofer's errno.
        With fd (and path=None), the operation acts on that open file instead of a path."""
        req = {"op": op, **args}
        if creds is not None:
            req["creds"] = creds
        try:
            protocol.send(self.sock, req, fd)
            reply, fd = protocol.recv(self.sock)
        except (BrokenPipeError, ConnectionResetError):
            raise GoferGone() from None
        if reply is None:
            raise GoferGone()
        if "ok" in reply:
            return reply["ok"], fd
        err = reply.get("errno")
        err = err if isinstance(err, int) and err > 0 else errno.EIO  # a malformed reply
        raise OSError(err, os.strerror(err))

    def open(self, path: bytes, flags: int, mode: int = 0, creds: tuple | None = None,
             base: bytes | None = None, resolve: int = 0) -> int:
        """path from the container root, or with base, path from that directory; resolve
        adds the caller's RESOLVE_* restrictions to the gofer's own."""
        args = {"base": base, "resolve": resolve} if resolve else {}
        _, fd = self.call("open", creds, path=path, flags=flags, mode=mode, **args)
        if fd is None:
            raise OSError(errno.EIO, "gofer sent no descriptor")
        return fd
