"""Socket calls that name a path: bind of an AF_UNIX socket to a file.

The workload's mount namespace is a read-only copy of the container tree, so a bind there
would say EROFS; the socket file must be made in the gofer's tree, as the caller, like any
other file. Everything else about sockets is the host kernel's (passthrough): connect and
sendto only look the file up (by inode, which the copy shares), abstract and unnamed
addresses live in the sandbox's own network namespace. Passing the others through is no
check-then-CONTINUE hazard: a second thread that rewrites the address into a path after
the sentry read it gets the kernel's bind in the read-only copy, EROFS.
"""
from __future__ import annotations

import os
import socket
import struct

from syscalls.context import SyscallContext
from syscalls.paths import cwd_path, gofer_root

_SOCKADDR_UN_SIZE = 110  # sa_family + sun_path[108]


def bind(ctx: SyscallContext) -> None:
    fd, addr, addrlen = ctx.args[0], ctx.args[1], ctx.args[2]  # int, pointer, int
    # What the kernel refuses before it looks at the address (a bad length or pointer),
    # and every address that is not a path, are the kernel's to answer.
    if not 2 < addrlen <= _SOCKADDR_UN_SIZE or addr == 0:
        return ctx.passthrough()
    try:
        raw = ctx.read(addr, addrlen)  # read once: the gofer binds exactly these bytes
    except OSError:
        return ctx.passthrough()
    if struct.unpack_from("=H", raw)[0] != socket.AF_UNIX or raw[2] == 0:
        return ctx.passthrough()
    sock = ctx.take_fd(fd)
    try:
        # A relative path is the caller's cwd's: the gofer binds from there, with the
        # bytes given, so getsockname shows them as on Linux.
        cwd = cwd_path(ctx) if raw[2] != ord("/") else b"/"
        # An absolute one starts at the caller's root (a chroot: see Gofer.op_bind).
        ctx.kernel.gofer.call("bind", ctx.creds(), fd=sock, addr=raw, cwd=cwd,
                              root=gofer_root(ctx))
    finally:
        os.close(sock)
    ctx.reply(0)
