"""Path-based file syscalls: each is answered by the gofer (see DESIGN.md)."""
from __future__ import annotations

import errno
import os
import posixpath
import stat as stat_mod
import struct

from syscalls.context import FdLater, SyscallContext, TargetGone
from syscalls.paths import (
    AT_EMPTY_PATH,
    AT_FDCWD,
    AT_REMOVEDIR,
    AT_SYMLINK_FOLLOW,
    AT_SYMLINK_NOFOLLOW,
    absolute,
    as_int,
    at,
    fd_link,
    fd_path,
    joined,
    read_path,
)

AT_EACCESS = 0x200
RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_WHITEOUT = 1, 2, 4
RESOLVE_BENEATH = 0x08
UTIME_NOW = (1 << 30) - 1


def _gofer(ctx: SyscallContext, op: str, **args) -> tuple:
    return ctx.kernel.gofer.call(op, ctx.creds(), **args)


def _empty_path(ctx: SyscallContext, addr: int, flags: int) -> bool:
    """True when the call names its descriptor alone (AT_EMPTY_PATH with "" or NULL)."""
    if not flags & AT_EMPTY_PATH:
        return False
    return addr == 0 or read_path(ctx, addr) == b""


# -- open ---------------------------------------------------------------------
def _reopen(ctx: SyscallContext, owner: bytes, num: int, flags: int) -> int:
    """Open a descriptor the workload holds anew, as Linux's /proc/PID/fd/N magic link
    does: the same file, with no more access than the descriptor has."""
    if owner == b"self":
        host_pid = ctx.pid
    else:
        host_pid = ctx.kernel.procfs.host_pid(int(owner)) if ctx.kernel.procfs else None
        if host_pid is None:
            raise OSError(errno.ENOENT, "no such process")
        if ctx.kernel.procfs.translate(int(ctx.status()["Tgid"])) != int(owner):
            raise OSError(errno.EACCES, "another process's descriptor")
    try:
        with open(f"/proc/{host_pid}/fdinfo/{num}") as f:
            held = int(next(line for line in f if line.startswith("flags:")).split()[1], 8)
    except (OSError, StopIteration):
        raise OSError(errno.ENOENT, "no such descriptor") from None
    want, have = flags & os.O_ACCMODE, held & os.O_ACCMODE
    if want != have and have != os.O_RDWR:
        raise OSError(errno.EACCES, "descriptor not open for that access")
    keep = os.O_ACCMODE | os.O_APPEND | os.O_NONBLOCK | os.O_TRUNC | os.O_NOCTTY
    return os.open(f"/proc/{host_pid}/fd/{num}", (flags & keep) | os.O_CLOEXEC)


def _controlling_tty(ctx: SyscallContext, flags: int) -> int:
    """/dev/tty: the caller's controlling terminal (ENXIO without one). The gofer has
    none, so it opens the pts slave the kernel names as the caller's (tty_nr), and only
    that device is handed over."""
    try:
        with open(f"/proc/{ctx.pid}/stat", "rb") as f:
            tty_nr = int(f.read().rpartition(b") ")[2].split()[4])
    except (OSError, IndexError, ValueError):
        raise TargetGone() from None
    major, minor = os.major(tty_nr), os.minor(tty_nr)
    if not 136 <= major < 144:  # no terminal, or not one of the container's ptys
        raise OSError(errno.ENXIO, "no controlling terminal")
    pts = f"/dev/pts/{(major - 136) * 256 + minor}".encode()
    keep = os.O_ACCMODE | os.O_APPEND | os.O_NONBLOCK
    fd = ctx.kernel.gofer.open(pts, (flags & keep) | os.O_NOCTTY)
    if os.fstat(fd).st_rdev != tty_nr:
        os.close(fd)
        raise OSError(errno.ENXIO, "no controlling terminal")
    return fd


_O_PATH_KEEPS = os.O_PATH | os.O_CLOEXEC | os.O_DIRECTORY | os.O_NOFOLLOW


def _check_open_flags(flags: int) -> None:
    """The kernel's build_open_flags() refusals, which come before any path lookup."""
    if flags & os.O_CREAT and flags & os.O_DIRECTORY:
        raise OSError(errno.EINVAL, "O_CREAT with O_DIRECTORY")
    if flags & os.O_TMPFILE == os.O_TMPFILE and flags & os.O_ACCMODE == os.O_RDONLY:
        raise OSError(errno.EINVAL, "O_TMPFILE needs write access")


def _open(ctx: SyscallContext, dirfd: int, addr: int, flags: int, mode: int) -> None:
    _check_open_flags(flags)
    path = joined(ctx, dirfd, read_path(ctx, addr))
    link = fd_link(path)
    if link is not None:
        fd = _reopen(ctx, *link, flags)
    elif posixpath.normpath(path) == b"/dev/tty" and not flags & os.O_PATH:
        fd = _controlling_tty(ctx, flags)
    else:
        if flags & os.O_PATH:
            # The kernel will not install an O_PATH file into another process (ADDFD
            # says EBADF): give a read-only descriptor instead, opened as the caller.
            # Differences (README): F_GETFL shows O_RDONLY, read permission is needed,
            # and O_NOFOLLOW on a symlink gives ELOOP instead of the link itself.
            flags = (flags & _O_PATH_KEEPS & ~os.O_PATH) | os.O_RDONLY | os.O_NONBLOCK
        fd = ctx.kernel.gofer.open(absolute(ctx, AT_FDCWD, path), flags & ~os.O_CLOEXEC,
                                   mode & 0o7777, ctx.creds(),
                                   FdLater(ctx, bool(flags & os.O_CLOEXEC)))
        if fd is None:
            return ctx.defer()  # a FIFO's end waits in the gofer; FdLater answers
    try:
        ctx.install_fd(fd, bool(flags & os.O_CLOEXEC))
    finally:
        os.close(fd)


def _lenient(flags: int) -> int:
    """open and openat ignore what O_PATH does not use; openat2 (and so the gofer) says
    EINVAL instead."""
    return flags & _O_PATH_KEEPS if flags & os.O_PATH else flags


def open_(ctx: SyscallContext) -> None:
    _open(ctx, AT_FDCWD, ctx.args[0], _lenient(ctx.args[1]), ctx.args[2])


def openat(ctx: SyscallContext) -> None:
    _open(ctx, ctx.args[0], ctx.args[1], _lenient(ctx.args[2]), ctx.args[3])


def creat(ctx: SyscallContext) -> None:
    _open(ctx, AT_FDCWD, ctx.args[0], os.O_CREAT | os.O_WRONLY | os.O_TRUNC, ctx.args[1])


def openat2(ctx: SyscallContext) -> None:
    size = ctx.args[3]
    if size < 24:
        raise OSError(errno.EINVAL, "open_how too small")
    flags, mode, resolve = struct.unpack("QQQ", ctx.read(ctx.args[2], 24))
    if resolve & RESOLVE_BENEATH:
        # Beneath the dirfd: refuse what lexically leaves it; the gofer keeps the root.
        rel = read_path(ctx, ctx.args[1])
        if rel.startswith(b"/") or b".." in rel.split(b"/"):
            raise OSError(errno.EXDEV, "path escapes the directory")
    _open(ctx, ctx.args[0], ctx.args[1], flags, mode)


# -- stat family --------------------------------------------------------------
def _stat(ctx: SyscallContext, dirfd: int, addr: int, buf: int, flags: int) -> None:
    if _empty_path(ctx, addr, flags):
        return ctx.passthrough()  # fstat of a descriptor the sandbox holds
    raw, _ = _gofer(ctx, "stat", path=at(ctx, dirfd, addr),
                    follow=not flags & AT_SYMLINK_NOFOLLOW, statx_mask=None, sync=0)
    ctx.write(buf, raw)
    ctx.reply(0)


def stat(ctx: SyscallContext) -> None:
    _stat(ctx, AT_FDCWD, ctx.args[0], ctx.args[1], 0)


def lstat(ctx: SyscallContext) -> None:
    _stat(ctx, AT_FDCWD, ctx.args[0], ctx.args[1], AT_SYMLINK_NOFOLLOW)


def newfstatat(ctx: SyscallContext) -> None:
    _stat(ctx, ctx.args[0], ctx.args[1], ctx.args[2], ctx.args[3])


def statx(ctx: SyscallContext) -> None:
    dirfd, addr, flags, mask, buf = ctx.args[:5]
    if _empty_path(ctx, addr, flags):
        return ctx.passthrough()
    raw, _ = _gofer(ctx, "stat", path=at(ctx, dirfd, addr),
                    follow=not flags & AT_SYMLINK_NOFOLLOW, statx_mask=mask & 0xFFFFFFFF,
                    sync=flags & 0x6000)
    ctx.write(buf, raw)
    ctx.reply(0)


def statfs(ctx: SyscallContext) -> None:
    raw, _ = _gofer(ctx, "statfs", path=at(ctx, AT_FDCWD, ctx.args[0]))
    ctx.write(ctx.args[1], raw)
    ctx.reply(0)


# -- access -------------------------------------------------------------------
def _access(ctx: SyscallContext, dirfd: int, addr: int, mode: int, flags: int) -> None:
    if mode & ~7:
        raise OSError(errno.EINVAL, "bad mode")
    if _empty_path(ctx, addr, flags):
        return ctx.passthrough()
    creds = ctx.creds()
    if not flags & AT_EACCESS:
        # access() checks as the real ids, with the permitted capabilities for a real
        # root and none otherwise (the kernel's access_override_creds).
        ruid, rgid = ctx.real_ids()
        caps = int(ctx.status()["CapPrm"], 16) if ruid == 0 else 0
        creds = (ruid, rgid, creds[2], creds[3], caps)
    ctx.kernel.gofer.call("access", creds, path=at(ctx, dirfd, addr), mode=mode,
                          follow=not flags & AT_SYMLINK_NOFOLLOW)
    ctx.reply(0)


def access(ctx: SyscallContext) -> None:
    _access(ctx, AT_FDCWD, ctx.args[0], ctx.args[1], 0)


def faccessat(ctx: SyscallContext) -> None:
    _access(ctx, ctx.args[0], ctx.args[1], ctx.args[2], 0)


def faccessat2(ctx: SyscallContext) -> None:
    _access(ctx, ctx.args[0], ctx.args[1], ctx.args[2], ctx.args[3])


# -- readlink -----------------------------------------------------------------
def _readlink(ctx: SyscallContext, dirfd: int, addr: int, buf: int, size: int) -> None:
    if as_int(size) <= 0:
        raise OSError(errno.EINVAL, "bad size")
    if read_path(ctx, addr) == b"" and as_int(dirfd) != AT_FDCWD:
        return ctx.passthrough()  # the descriptor's own link
    target, _ = _gofer(ctx, "readlink", path=at(ctx, dirfd, addr))
    data = target[:size]
    ctx.write(buf, data)
    ctx.reply(len(data))


def readlink(ctx: SyscallContext) -> None:
    _readlink(ctx, AT_FDCWD, ctx.args[0], ctx.args[1], ctx.args[2])


def readlinkat(ctx: SyscallContext) -> None:
    _readlink(ctx, ctx.args[0], ctx.args[1], ctx.args[2], ctx.args[3])


# -- cwd ----------------------------------------------------------------------
def chdir(ctx: SyscallContext) -> None:
    _gofer(ctx, "check_dir", path=at(ctx, AT_FDCWD, ctx.args[0]))
    # The kernel repeats the walk in the workload's own (read-only) copy of the same tree.
    ctx.passthrough()


def fchdir(ctx: SyscallContext) -> None:
    fd = as_int(ctx.args[0])
    path = fd_path(ctx, fd)
    try:
        st = os.stat(f"/proc/{ctx.pid}/fd/{fd}")
    except OSError:
        raise OSError(errno.EBADF, "bad file descriptor") from None
    if not stat_mod.S_ISDIR(st.st_mode):
        raise OSError(errno.ENOTDIR, "not a directory")
    raw, _ = _gofer(ctx, "stat", path=path, follow=False, statx_mask=None, sync=0)
    dev, ino = struct.unpack_from("QQ", raw)
    if (dev, ino) != (st.st_dev, st.st_ino):
        # Not the container's directory at that path: a descriptor from outside.
        raise OSError(errno.EACCES, "directory is not inside the container")
    _gofer(ctx, "check_dir", path=path)
    ctx.passthrough()


# -- namespace changes --------------------------------------------------------
def _mkdir(ctx: SyscallContext, dirfd: int, addr: int, mode: int) -> None:
    _gofer(ctx, "mkdir", path=at(ctx, dirfd, addr), mode=mode & 0o7777)
    ctx.reply(0)


def mkdir(ctx: SyscallContext) -> None:
    _mkdir(ctx, AT_FDCWD, ctx.args[0], ctx.args[1])


def mkdirat(ctx: SyscallContext) -> None:
    _mkdir(ctx, ctx.args[0], ctx.args[1], ctx.args[2])


def _mknod(ctx: SyscallContext, dirfd: int, addr: int, mode: int, dev: int) -> None:
    mode &= 0xFFFFFFFF
    if stat_mod.S_IFMT(mode) == 0:
        mode |= stat_mod.S_IFREG
    _gofer(ctx, "mknod", path=at(ctx, dirfd, addr), mode=mode, dev=0)
    ctx.reply(0)


def mknod(ctx: SyscallContext) -> None:
    _mknod(ctx, AT_FDCWD, ctx.args[0], ctx.args[1], ctx.args[2])


def mknodat(ctx: SyscallContext) -> None:
    _mknod(ctx, ctx.args[0], ctx.args[1], ctx.args[2], ctx.args[3])


def _unlink(ctx: SyscallContext, dirfd: int, addr: int, flags: int) -> None:
    if flags & ~AT_REMOVEDIR:
        raise OSError(errno.EINVAL, "bad flags")
    _gofer(ctx, "unlink", path=at(ctx, dirfd, addr), rmdir=bool(flags & AT_REMOVEDIR))
    ctx.reply(0)


def unlink(ctx: SyscallContext) -> None:
    _unlink(ctx, AT_FDCWD, ctx.args[0], 0)


def unlinkat(ctx: SyscallContext) -> None:
    _unlink(ctx, ctx.args[0], ctx.args[1], ctx.args[2])


def rmdir(ctx: SyscallContext) -> None:
    _unlink(ctx, AT_FDCWD, ctx.args[0], AT_REMOVEDIR)


def _rename(ctx: SyscallContext, olddir: int, old: int, newdir: int, new: int,
            flags: int) -> None:
    if flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT):
        raise OSError(errno.EINVAL, "bad flags")
    _gofer(ctx, "rename", old=at(ctx, olddir, old), new=at(ctx, newdir, new), flags=flags)
    ctx.reply(0)


def rename(ctx: SyscallContext) -> None:
    _rename(ctx, AT_FDCWD, ctx.args[0], AT_FDCWD, ctx.args[1], 0)


def renameat(ctx: SyscallContext) -> None:
    _rename(ctx, ctx.args[0], ctx.args[1], ctx.args[2], ctx.args[3], 0)


def renameat2(ctx: SyscallContext) -> None:
    _rename(ctx, ctx.args[0], ctx.args[1], ctx.args[2], ctx.args[3], ctx.args[4])


def _link(ctx: SyscallContext, olddir: int, old: int, newdir: int, new: int,
          flags: int) -> None:
    if flags & ~(AT_SYMLINK_FOLLOW | AT_EMPTY_PATH):
        raise OSError(errno.EINVAL, "bad flags")
    _gofer(ctx, "link", old=at(ctx, olddir, old), new=at(ctx, newdir, new),
           follow=bool(flags & AT_SYMLINK_FOLLOW))
    ctx.reply(0)


def link(ctx: SyscallContext) -> None:
    _link(ctx, AT_FDCWD, ctx.args[0], AT_FDCWD, ctx.args[1], 0)


def linkat(ctx: SyscallContext) -> None:
    _link(ctx, ctx.args[0], ctx.args[1], ctx.args[2], ctx.args[3], ctx.args[4])


def _symlink(ctx: SyscallContext, target_addr: int, dirfd: int, addr: int) -> None:
    target = read_path(ctx, target_addr)
    if not target:
        raise OSError(errno.ENOENT, "empty target")
    _gofer(ctx, "symlink", target=target, path=at(ctx, dirfd, addr))
    ctx.reply(0)


def symlink(ctx: SyscallContext) -> None:
    _symlink(ctx, ctx.args[0], AT_FDCWD, ctx.args[1])


def symlinkat(ctx: SyscallContext) -> None:
    _symlink(ctx, ctx.args[0], ctx.args[1], ctx.args[2])


# -- attributes ---------------------------------------------------------------
def _chmod(ctx: SyscallContext, dirfd: int, addr: int, mode: int, flags: int) -> None:
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        raise OSError(errno.EINVAL, "bad flags")
    if _empty_path(ctx, addr, flags):
        return ctx.passthrough()
    _gofer(ctx, "chmod", path=at(ctx, dirfd, addr), mode=mode & 0o7777,
           follow=not flags & AT_SYMLINK_NOFOLLOW)
    ctx.reply(0)


def chmod(ctx: SyscallContext) -> None:
    _chmod(ctx, AT_FDCWD, ctx.args[0], ctx.args[1], 0)


def fchmodat(ctx: SyscallContext) -> None:
    _chmod(ctx, ctx.args[0], ctx.args[1], ctx.args[2], 0)


def fchmodat2(ctx: SyscallContext) -> None:
    _chmod(ctx, ctx.args[0], ctx.args[1], ctx.args[2], ctx.args[3])


def _chown(ctx: SyscallContext, dirfd: int, addr: int, uid: int, gid: int, flags: int) -> None:
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        raise OSError(errno.EINVAL, "bad flags")
    if _empty_path(ctx, addr, flags):
        return ctx.passthrough()
    _gofer(ctx, "chown", path=at(ctx, dirfd, addr), uid=uid & 0xFFFFFFFF,
           gid=gid & 0xFFFFFFFF, follow=not flags & AT_SYMLINK_NOFOLLOW)
    ctx.reply(0)


def chown(ctx: SyscallContext) -> None:
    _chown(ctx, AT_FDCWD, ctx.args[0], ctx.args[1], ctx.args[2], 0)


def lchown(ctx: SyscallContext) -> None:
    _chown(ctx, AT_FDCWD, ctx.args[0], ctx.args[1], ctx.args[2], AT_SYMLINK_NOFOLLOW)


def fchownat(ctx: SyscallContext) -> None:
    _chown(ctx, ctx.args[0], ctx.args[1], ctx.args[2], ctx.args[3], ctx.args[4])


def _utimens(ctx: SyscallContext, dirfd: int, addr: int, times: bytes | None,
             flags: int) -> None:
    _gofer(ctx, "utimens", path=at(ctx, dirfd, addr),
           times=times,
           follow=not flags & AT_SYMLINK_NOFOLLOW)
    ctx.reply(0)


def utimensat(ctx: SyscallContext) -> None:
    dirfd, addr, times_addr, flags = ctx.args[:4]
    if addr == 0 or _empty_path(ctx, addr, flags):
        return ctx.passthrough()  # futimens on a descriptor
    times = ctx.read(times_addr, 32) if times_addr else None
    _utimens(ctx, dirfd, addr, times, flags)


def _timevals(ctx: SyscallContext, addr: int) -> bytes | None:
    if not addr:
        return None
    sec0, usec0, sec1, usec1 = struct.unpack("qqqq", ctx.read(addr, 32))
    if not (0 <= usec0 < 1_000_000 and 0 <= usec1 < 1_000_000):
        raise OSError(errno.EINVAL, "bad timeval")
    return struct.pack("qqqq", sec0, usec0 * 1000, sec1, usec1 * 1000)


def utimes(ctx: SyscallContext) -> None:
    _utimens(ctx, AT_FDCWD, ctx.args[0], _timevals(ctx, ctx.args[1]), 0)


def futimesat(ctx: SyscallContext) -> None:
    _utimens(ctx, ctx.args[0], ctx.args[1], _timevals(ctx, ctx.args[2]), 0)


def utime(ctx: SyscallContext) -> None:
    times = None
    if ctx.args[1]:
        actime, modtime = struct.unpack("qq", ctx.read(ctx.args[1], 16))
        times = struct.pack("qqqq", actime, 0, modtime, 0)
    _utimens(ctx, AT_FDCWD, ctx.args[0], times, 0)


def truncate(ctx: SyscallContext) -> None:
    length = ctx.args[1] - (1 << 64) if ctx.args[1] >> 63 else ctx.args[1]
    if length < 0:
        raise OSError(errno.EINVAL, "negative length")
    _gofer(ctx, "truncate", path=at(ctx, AT_FDCWD, ctx.args[0]), length=length)
    ctx.reply(0)
