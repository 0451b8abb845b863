"""Turning a workload's (dirfd, path) into an absolute path inside the container.

The kernel shows the sentry a workload's cwd and descriptors (/proc/PID/cwd, fd/N) as
paths from the root of the mount namespace they live in, which is the container root (the
workload's and the gofer's namespaces are both rooted there), so the joined path is a
container path that the gofer resolves again inside the root.

A process that called chroot has its own root, shown the same way (/proc/PID/root): its
absolute paths start there, and the gofer resolves a path below that root from it
(request field "root", see Gofer._start), so `..` and absolute symlinks stop at the
chroot as on Linux. A relative path from a cwd or dirfd outside the chroot (chroot
without chdir, a descriptor opened before) is resolved from the container root, as
before the chroot: Linux would stop a `..` that passes through the chroot on the way and
resolve an absolute symlink met there from it; here neither, and both stay in the
container root. chroot only ever narrows what the gofer resolves.
"""
from __future__ import annotations

import ctypes
import errno
import os
import posixpath
import stat as stat_mod

from syscalls.abi import (  # noqa: F401 (handlers import them from here)
    AT_EMPTY_PATH,
    AT_FDCWD,
    AT_REMOVEDIR,
    AT_SYMLINK_FOLLOW,
    AT_SYMLINK_NOFOLLOW,
)
from syscalls.context import SyscallContext, TargetGone

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


def root_path(ctx: SyscallContext) -> bytes:
    """The caller's root as a container path: b"/" unless a process of the sandbox ever
    called chroot (the only way to another root: pivot_root and setns are refused)."""
    cached = getattr(ctx, "_root", None)
    if cached is not None:
        return cached
    root = b"/"
    if getattr(ctx.kernel, "chrooted", False):
        try:
            root = os.readlink(f"/proc/{ctx.pid}/root".encode())
        except OSError:
            raise TargetGone() from None
        ctx.validate()
        if not root.startswith(b"/") or root.endswith(_DELETED):
            # A root removed since: nothing but the root itself is left to name (ENOENT
            # for that too, a difference).
            raise OSError(errno.ENOENT, "the root was removed")
    ctx._root = root
    return root


def gofer_root(ctx: SyscallContext) -> bytes | None:
    """The caller's root for a gofer request (None: the container root)."""
    root = root_path(ctx)
    return None if root == b"/" else root


def norm(ctx: SyscallContext, path: bytes) -> bytes:
    """A container path normalised lexically as the caller's walk would see it: `..`
    never climbs above the caller's root (for the magic names: /proc, /dev/fd, /dev/tty)."""
    root = root_path(ctx)
    if root != b"/" and (path == root or path.startswith(root + b"/")):
        return root + posixpath.normpath(b"/" + path[len(root):]).rstrip(b"/")
    return posixpath.normpath(path)


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
    else:
        root = root_path(ctx)
        if root != b"/":
            path = root + path
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
    return prepared(ctx, joined(ctx, dirfd, path))


def prepared(ctx: SyscallContext, path: bytes) -> bytes:
    """A joined container path with /proc paths prepared by the sentry."""
    procfs = getattr(ctx.kernel, "procfs", None)
    if procfs is not None:
        lexical = norm(ctx, path)
        if lexical == b"/dev/fd" or lexical.startswith(b"/dev/fd/"):
            lexical = b"/proc/self/fd" + lexical[len(b"/dev/fd"):]  # the link, made concrete
            path = lexical + (b"/" if path.endswith(b"/") else b"")
        if lexical == b"/proc" or lexical.startswith(b"/proc/"):
            trailing = b"/" if path.endswith(b"/") and lexical != b"/" else b""
            path = procfs.prepare(ctx, lexical) + trailing
    return path


def at(ctx: SyscallContext, dirfd: int, addr: int) -> bytes:
    return absolute(ctx, dirfd, read_path(ctx, addr))
