"""Turning a workload's (dirfd, path) into an absolute path inside the container.

The kernel shows the sentry a workload's cwd and descriptors (/proc/PID/cwd, fd/N) as
paths from the root of the mount namespace they live in, which is the container root (the
workload's and the gofer's namespaces are both rooted there), so the joined path is a
container path that the gofer resolves again inside the root.
"""
from __future__ import annotations

import ctypes
import errno
import os
import posixpath
import stat as stat_mod

from syscalls.context import SyscallContext, TargetGone

AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
AT_REMOVEDIR = 0x200
AT_SYMLINK_FOLLOW = 0x400
AT_EMPTY_PATH = 0x1000
_DELETED = b" (deleted)"


def as_int(value: int) -> int:
    """A 32-bit signed argument (dirfd, fd) from its 64-bit register."""
    return ctypes.c_int(value & 0xFFFFFFFF).value


def cwd_path(ctx: SyscallContext) -> bytes:
    try:
        path = os.readlink(f"/proc/{ctx.pid}/cwd".encode())
    except OSError:
        raise TargetGone() from None
    ctx.validate()
    return path


def fd_path(ctx: SyscallContext, fd: int) -> bytes:
    """The container path a workload descriptor refers to (EBADF if none)."""
    if fd < 0:
        raise OSError(errno.EBADF, "bad file descriptor")
    try:
        target = os.readlink(f"/proc/{ctx.pid}/fd/{fd}".encode())
    except FileNotFoundError:
        ctx.validate()
        raise OSError(errno.EBADF, "bad file descriptor") from None
    ctx.validate()
    if not target.startswith(b"/"):
        raise OSError(errno.ENOTDIR, "not a directory")  # pipe:[..], socket:[..], ...
    if target.endswith(_DELETED):
        raise OSError(errno.ENOENT, "deleted")
    return target


def read_path(ctx: SyscallContext, addr: int) -> bytes:
    return ctx.read_cstring(addr)


def joined(ctx: SyscallContext, dirfd: int, path: bytes) -> bytes:
    """dirfd/path as an absolute container path, not yet resolved."""
    if not path:
        raise OSError(errno.ENOENT, "empty path")
    if not path.startswith(b"/"):
        base = cwd_path(ctx) if as_int(dirfd) == AT_FDCWD else _dir_path(ctx, as_int(dirfd))
        path = base.rstrip(b"/") + b"/" + path
    return path


def _dir_path(ctx: SyscallContext, fd: int) -> bytes:
    """fd_path for a dirfd: the kernel says ENOTDIR for a file, also a deleted one."""
    try:
        return fd_path(ctx, fd)
    except OSError as e:
        if e.errno == errno.ENOENT:  # deleted: the errno depends on what it was
            try:
                is_dir = stat_mod.S_ISDIR(os.stat(f"/proc/{ctx.pid}/fd/{fd}").st_mode)
            except OSError:
                raise e from None
            if not is_dir:
                raise OSError(errno.ENOTDIR, "not a directory") from None
        raise


_STDIO_LINKS = {b"/dev/stdin": 0, b"/dev/stdout": 1, b"/dev/stderr": 2}


def fd_link(path: bytes) -> tuple[bytes, int] | None:
    """(pid or b"self", fd) when path names a descriptor through Linux's magic links:
    /dev/std{in,out,err}, /dev/fd/N, /proc/{self,thread-self,PID}/fd/N."""
    norm = posixpath.normpath(path)
    if norm in _STDIO_LINKS:
        return b"self", _STDIO_LINKS[norm]
    parts = norm.split(b"/")
    if len(parts) == 4 and parts[1:3] == [b"dev", b"fd"] and parts[3].isdigit():
        return b"self", int(parts[3])
    if (len(parts) == 5 and parts[1] == b"proc" and parts[3] == b"fd" and parts[4].isdigit()
            and (parts[2] in (b"self", b"thread-self") or parts[2].isdigit())):
        return (b"self" if not parts[2].isdigit() else parts[2]), int(parts[4])
    return None


def absolute(ctx: SyscallContext, dirfd: int, path: bytes) -> bytes:
    """dirfd/path as an absolute container path; /proc paths are prepared by the sentry."""
    path = joined(ctx, dirfd, path)
    procfs = getattr(ctx.kernel, "procfs", None)
    if procfs is not None:
        norm = posixpath.normpath(path)
        if norm == b"/dev/fd" or norm.startswith(b"/dev/fd/"):
            norm = b"/proc/self/fd" + norm[len(b"/dev/fd"):]  # the link, made concrete
            path = norm + (b"/" if path.endswith(b"/") else b"")
        if norm == b"/proc" or norm.startswith(b"/proc/"):
            trailing = b"/" if path.endswith(b"/") and norm != b"/" else b""
            path = procfs.prepare(ctx, norm) + trailing
    return path


def at(ctx: SyscallContext, dirfd: int, addr: int) -> bytes:
    return absolute(ctx, dirfd, read_path(ctx, addr))
