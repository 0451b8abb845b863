"""The kernel's argument checks that come before it looks at any path or permission.

Linux refuses bad flags, modes and sizes first (EINVAL before ENOENT, EACCES or EPERM,
often before it even copies the path: EINVAL before EFAULT). The sentry runs the same
checks, in the same order, before the handler: a check raises OSError with Linux's errno
(or answers the call itself, and the handler does not run).
Arguments arrive cast to their C types (syscalls.argtypes).
"""
from __future__ import annotations

import errno
import os
import stat as stat_mod
from collections.abc import Callable

from syscalls import abi
from syscalls.abi import (
    AT_EACCESS,
    AT_EMPTY_PATH,
    AT_REMOVEDIR,
    AT_SYMLINK_FOLLOW,
    AT_SYMLINK_NOFOLLOW,
    RESOLVE_BENEATH,
    RESOLVE_IN_ROOT,
)
from syscalls.context import SyscallContext

STATX__RESERVED = 0x80000000
RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_WHITEOUT = 1, 2, 4
UTIME_NOW, UTIME_OMIT = (1 << 30) - 1, (1 << 30) - 2


def _einval(why: str) -> OSError:
    return OSError(errno.EINVAL, why)


def _flags(allowed: int, index: int) -> Callable[[SyscallContext], None]:
    def check(ctx: SyscallContext) -> None:
        if ctx.args[index] & ~allowed:
            raise _einval("unknown flags")
    return check


def _access_mode(index: int, flags_index: int | None = None
                 ) -> Callable[[SyscallContext], None]:
    def check(ctx: SyscallContext) -> None:
        if ctx.args[index] & ~7:
            raise _einval("bad mode")
        if flags_index is not None and ctx.args[flags_index] & ~(
                AT_EACCESS | AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
            raise _einval("unknown flags")
    return check


def _statx(ctx: SyscallContext) -> None:
    flags, mask = ctx.args[2], ctx.args[3]
    if flags & abi.AT_STATX_SYNC_TYPE == abi.AT_STATX_SYNC_TYPE:
        raise _einval("both statx sync types")
    if mask & STATX__RESERVED:
        raise _einval("reserved statx mask bit")
    if (not flags & AT_EMPTY_PATH or ctx.args[0] < 0) and not stat_flags_valid(flags):
        # (With AT_EMPTY_PATH and a descriptor: in the handler, once the path is copied.)
        raise _einval("unknown flags")


def _newfstatat(ctx: SyscallContext) -> None:
    """As statx: the flags are checked before the path unless a descriptor may be all
    the call names (then in the handler, see stat_flags_valid)."""
    flags = ctx.args[3]
    if (not flags & AT_EMPTY_PATH or ctx.args[0] < 0) and not stat_flags_valid(flags):
        raise _einval("unknown flags")


def stat_flags_valid(flags: int) -> bool:
    """statx's and newfstatat's flags, as Linux checks them for a path (a descriptor
    alone, AT_EMPTY_PATH with an empty path and dirfd >= 0, takes any bits: the
    kernel's fd-only paths, do_statx_fd() and vfs_fstat(), do not look)."""
    return not flags & ~(AT_SYMLINK_NOFOLLOW | abi.AT_NO_AUTOMOUNT | AT_EMPTY_PATH
                         | abi.AT_STATX_SYNC_TYPE)


def _renameat2(ctx: SyscallContext) -> None:
    flags = ctx.args[4]
    if flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT):
        raise _einval("unknown flags")
    if flags & (RENAME_NOREPLACE | RENAME_WHITEOUT) and flags & RENAME_EXCHANGE:
        raise _einval("RENAME_EXCHANGE with NOREPLACE or WHITEOUT")


def _mknod(index: int) -> Callable[[SyscallContext], None]:
    """may_mknod(): the file type alone, before the path is looked up."""
    def check(ctx: SyscallContext) -> None:
        kind = stat_mod.S_IFMT(ctx.args[index])
        if kind == stat_mod.S_IFDIR:
            raise OSError(errno.EPERM, "mknod cannot make directories")
        if kind not in (0, stat_mod.S_IFREG, stat_mod.S_IFCHR, stat_mod.S_IFBLK,
                        stat_mod.S_IFIFO, stat_mod.S_IFSOCK):
            raise _einval("unknown file type")
    return check


_O_LARGEFILE = 0o100000  # the kernel's (glibc's os.O_LARGEFILE is 0 on 64-bit)
_VALID_OPEN = (os.O_ACCMODE | os.O_CREAT | os.O_EXCL | os.O_NOCTTY | os.O_TRUNC | os.O_APPEND
               | os.O_NONBLOCK | os.O_DSYNC | os.O_SYNC | 0o20000 | os.O_DIRECT | _O_LARGEFILE
               | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NOATIME | os.O_CLOEXEC | os.O_PATH
               | os.O_TMPFILE)
_O_PATH_FLAGS = os.O_DIRECTORY | os.O_NOFOLLOW | os.O_PATH | os.O_CLOEXEC
_O_TMPFILE_BIT = os.O_TMPFILE & ~os.O_DIRECTORY
_VALID_RESOLVE = 0x3F  # NO_XDEV NO_MAGICLINKS NO_SYMLINKS BENEATH IN_ROOT CACHED
PAGE_SIZE = 4096


def open_flags(flags: int, mode: int, resolve: int) -> None:
    """build_open_flags(): what open, openat and openat2 refuse before the path."""
    if flags & ~_VALID_OPEN:
        raise _einval("unknown open flags")
    if resolve & ~_VALID_RESOLVE:
        raise _einval("unknown resolve flags")
    if resolve & RESOLVE_BENEATH and resolve & RESOLVE_IN_ROOT:
        raise _einval("RESOLVE_BENEATH with RESOLVE_IN_ROOT")
    if flags & (os.O_CREAT | _O_TMPFILE_BIT):
        if mode & ~0o7777:
            raise _einval("mode beyond 07777")
    elif mode:
        raise _einval("a mode without O_CREAT or O_TMPFILE")
    if flags & os.O_CREAT and flags & os.O_DIRECTORY:
        raise _einval("O_CREAT with O_DIRECTORY")
    if flags & _O_TMPFILE_BIT:
        if flags & (os.O_TMPFILE | os.O_CREAT) != os.O_TMPFILE:
            raise _einval("O_TMPFILE with O_CREAT or without O_DIRECTORY")
        if flags & os.O_ACCMODE == os.O_RDONLY:
            raise _einval("O_TMPFILE needs write access")
    if flags & os.O_PATH and flags & ~_O_PATH_FLAGS:
        raise _einval("O_PATH with other flags")


def _utimensat(ctx: SyscallContext) -> None:
    """The times are copied before anything else; then the flags."""
    addr, times_addr, flags = ctx.args[1], ctx.args[2], ctx.args[3]
    if times_addr:
        raw = ctx.read(times_addr, 32)
        nsecs = (int.from_bytes(raw[8:16], "little", signed=True),
                 int.from_bytes(raw[24:32], "little", signed=True))
        if nsecs == (UTIME_OMIT, UTIME_OMIT):
            ctx.reply(0)  # nothing to do: Linux does not even look at the path
            return
        # (Bad nanoseconds are EINVAL only after the lookup: vfs_utimes, in the gofer.)
    if addr == 0 and ctx.args[0] != -100:
        if flags:
            raise _einval("flags on a descriptor")
    elif flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        raise _einval("unknown flags")


def _timevals(index: int) -> Callable[[SyscallContext], None]:
    def check(ctx: SyscallContext) -> None:
        if ctx.args[index]:
            raw = ctx.read(ctx.args[index], 32)
            usecs = (int.from_bytes(raw[8:16], "little", signed=True),
                     int.from_bytes(raw[24:32], "little", signed=True))
            if not all(0 <= u < 1_000_000 for u in usecs):
                raise _einval("bad microseconds")
    return check


def _readlink(index: int) -> Callable[[SyscallContext], None]:
    def check(ctx: SyscallContext) -> None:
        if ctx.args[index] <= 0:
            raise _einval("bad buffer size")
    return check


def _truncate(ctx: SyscallContext) -> None:
    if ctx.args[1] >> 63:
        raise _einval("negative length")


CHECKS: dict[str, Callable[[SyscallContext], None]] = {
    "access": _access_mode(1), "faccessat": _access_mode(2),
    "faccessat2": _access_mode(2, 3),
    "newfstatat": _newfstatat,
    "statx": _statx,  # openat2: its handler checks the open_how it reads (one read)
    "readlink": _readlink(2), "readlinkat": _readlink(3),
    "unlinkat": _flags(AT_REMOVEDIR, 2),
    "renameat2": _renameat2,
    "linkat": _flags(AT_SYMLINK_FOLLOW | AT_EMPTY_PATH, 4),
    "fchmodat2": _flags(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH, 3),
    "fchownat": _flags(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH, 4),
    "utimensat": _utimensat, "utimes": _timevals(1), "futimesat": _timevals(2),
    "truncate": _truncate,
    "mknod": _mknod(1), "mknodat": _mknod(2),
}
