"""The sentry's side of the gofer connection."""
from __future__ import annotations

import errno
import os
import select
import socket
from typing import Protocol

from gofer import protocol

LATER = object()  # call()'s result when the answer comes later


class _Cancelled:
    def wanted(self) -> bool:
        return False

    def done(self, fd: int | None, err: int) -> None:
        pass


_CANCELLED = _Cancelled()  # a cancelled request until its answer comes


class GoferGone(Exception):
    """The gofer process has exited: the sandbox cannot continue."""


class Waiter(Protocol):
    """Who gets the answer to a request the gofer answers later."""

    def wanted(self) -> bool:
        """False once nobody waits for the answer any more (the request is cancelled)."""

    def done(self, fd: int | None, err: int) -> None:
        """The answer: a descriptor (closed by the caller afterwards), or an errno."""


class GoferClient:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.next_id = 0
        self.waiting: dict[int, Waiter] = {}  # request id -> who gets its later answer
        self.arrived: list[tuple[dict, int | None]] = []  # later answers not yet given
        # Whether a message is there: MSG_DONTWAIT on a blocking Python socket still waits.
        self._poll = select.poll()
        self._poll.register(sock, select.POLLIN)

    def call(self, op: str, creds: tuple | None = None, later: Waiter | None = None,
             fd: int | None = None, **args) -> tuple:
        """Run op in the gofer; (result, fd or None). Raises OSError with the gofer's errno.
        With later, the gofer may defer the answer: then the result is LATER and later
        gets the answer (see deliver). With fd (and path=None), the operation acts on
        that open file instead of a path."""
        self.next_id += 1
        rid = self.next_id
        req = {"op": op, "id": rid, **args}
        if creds is not None:
            req["creds"] = creds
        if later is not None:
            req["later"] = True
        try:
            protocol.send(self.sock, req, fd)
            while True:
                reply, fd = protocol.recv(self.sock)
                if reply is None:
                    raise GoferGone("the gofer exited")
                if reply.get("id") == rid:
                    break
                self.arrived.append((reply, fd))  # another request's later answer
        except (BrokenPipeError, ConnectionResetError):
            raise GoferGone("the gofer exited") from None
        if "ok" in reply:
            return reply["ok"], fd
        if fd is not None:
            os.close(fd)
        if later is not None and reply.get("later") is True:
            self.waiting[rid] = later
            return LATER, None
        err = reply.get("errno")
        err = err if isinstance(err, int) and err > 0 else errno.EIO  # a malformed reply
        raise OSError(err, os.strerror(err))

    def open(self, path: bytes, flags: int, mode: int = 0, creds: tuple | None = None,
             later: Waiter | None = None, base: bytes | None = None,
             resolve: int = 0, root: bytes | None = None) -> int | None:
        """A descriptor of path from the container root, or with base, from that
        directory (resolve adds the caller's RESOLVE_* restrictions to the gofer's own);
        None when later gets it (a FIFO waiting for its other end). Without later, an
        open that would wait fails with EAGAIN."""
        args = {"base": base, "resolve": resolve} if resolve else {}
        if root is not None:
            args["root"] = root  # the caller's root (a chroot): see Gofer._start
        result, fd = self.call("open", creds, later, path=path, flags=flags, mode=mode,
                               **args)
        if result is LATER:
            return None
        if fd is None:
            raise OSError(errno.EIO, "gofer sent no descriptor")
        return fd

    # -- later answers: the event loop calls these --------------------------------
    def readable(self) -> None:
        """Take what the gofer sent unasked (later answers); GoferGone at its end."""
        while self._poll.poll(0):
            try:
                reply, fd = protocol.recv(self.sock)
            except ConnectionResetError:
                raise GoferGone("the gofer exited") from None
            if reply is None:
                raise GoferGone("the gofer exited")
            self.arrived.append((reply, fd))

    def deliver(self) -> None:
        """Give the later answers that arrived to their waiters."""
        while self.arrived:
            reply, fd = self.arrived.pop(0)
            waiter = self.waiting.pop(reply.get("id"), None)  # type: ignore[arg-type]
            try:
                if waiter is None or waiter is _CANCELLED:
                    continue  # the end of a cancelled wait, or not ours
                if "ok" in reply and fd is not None:
                    waiter.done(fd, 0)
                else:
                    err = reply.get("errno")
                    waiter.done(None, err if isinstance(err, int) and err > 0 else errno.EIO)
            finally:
                if fd is not None:
                    os.close(fd)

    def check_waiting(self) -> None:
        """Cancel the requests whose waiters no longer want the answer, and again those
        cancelled before whose answer has not come (the gofer may have missed it)."""
        for rid, waiter in list(self.waiting.items()):
            if waiter is _CANCELLED or not waiter.wanted():
                self.waiting[rid] = _CANCELLED
                try:
                    protocol.send(self.sock, {"op": "cancel", "id": rid})
                except (BrokenPipeError, ConnectionResetError):
                    raise GoferGone("the gofer exited") from None
