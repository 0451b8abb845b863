"""Path-based file syscalls: each is answered by the gofer (see DESIGN.md)."""
from __future__ import annotations

import errno
import fcntl
import os
import posixpath
import signal
import stat as stat_mod
import struct

from gofer.client import LATER
from syscalls import argcheck, host
from syscalls.abi import (
    AT_EACCESS,
    RESOLVE_BENEATH,
    RESOLVE_CACHED,
    RESOLVE_IN_ROOT,
    RESOLVE_NO_MAGICLINKS,
    RESOLVE_NO_SYMLINKS,
    RESOLVE_NO_XDEV,
)
from syscalls.argcheck import RENAME_EXCHANGE, RENAME_NOREPLACE, RENAME_WHITEOUT
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
    gofer_root,
    joined,
    norm,
    prepared,
    read_path,
    root_path,
)


def _gofer(ctx: SyscallContext, op: str, **args) -> tuple:
    return ctx.kernel.gofer.call(op, ctx.creds(), root=gofer_root(ctx), **args)


def _object(ctx: SyscallContext, dirfd: int, addr: int, flags: int,
            null_ok: bool = False) -> bytes | int:
    """What an *at() call names, its path read once: the container path, or a descriptor
    number of the caller's: dirfd itself (AT_EMPTY_PATH and an empty path), or the one a
    followed magic link names (/dev/stdin, /dev/fd/N, /proc/self/fd/N), as on Linux."""
    # A NULL path stands for "" only where Linux takes one (the stat family, utimensat).
    path = b"" if addr == 0 and null_ok and flags & AT_EMPTY_PATH else read_path(ctx, addr)
    if path or not flags & AT_EMPTY_PATH:
        if not flags & AT_SYMLINK_NOFOLLOW:
            link = fd_link(norm(ctx, joined(ctx, dirfd, path)))
            if link is not None and link[0] == b"self":
                if not os.path.lexists(f"/proc/{ctx.pid}/fd/{link[1]}"):
                    ctx.validate()
                    raise OSError(errno.ENOENT, "no such descriptor")  # a name, not an fd
                return link[1]
        return absolute(ctx, dirfd, path)
    if as_int(dirfd) == AT_FDCWD:
        return absolute(ctx, AT_FDCWD, b".")
    return as_int(dirfd)


def _on_object(ctx: SyscallContext, dirfd: int, addr: int, flags: int, op: str,
               creds: tuple | None = None, null_ok: bool = False, **args) -> tuple:
    """Run a gofer operation on what an *at() call names: dirfd/path, or the descriptor
    itself, taken with pidfd_getfd (the kernel is never left to read the path again)."""
    creds = creds if creds is not None else ctx.creds()
    target = _object(ctx, dirfd, addr, flags, null_ok)
    if isinstance(target, bytes):
        return ctx.kernel.gofer.call(op, creds, path=target, root=gofer_root(ctx), **args)
    fd = _take_for_gofer(ctx, target)
    try:
        return ctx.kernel.gofer.call(op, creds, fd=fd, path=None, **args)
    finally:
        os.close(fd)


def _take_for_gofer(ctx: SyscallContext, num: int) -> int:
    """The caller's descriptor num, for a gofer operation that may change the file. An
    O_PATH descriptor the kernel opened (see _native_o_path) is on the workload's
    read-only copy of a mount, where Linux would act on the container's own (writable)
    mount: the gofer gets the same file in its tree instead, looked up by the
    descriptor's path and kept only when it is the same inode (a file since renamed or
    deleted keeps the caller's descriptor, and the answer its mount gives)."""
    fd = ctx.take_fd(num)
    try:
        if not fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_PATH:
            return fd
        st = os.fstat(fd)
        path = fd_path(ctx, num)
        flags = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            # Opened as the caller, as its own descriptor was (linkat(AT_EMPTY_PATH)
            # without CAP_DAC_READ_SEARCH wants a file its present credentials opened).
            other = ctx.kernel.gofer.open(path, flags, 0, ctx.creds())
        except OSError:
            # An ancestor it may no longer search: as the gofer itself (an O_PATH look-up
            # opens nothing, and only the file the caller already holds is kept).
            other = ctx.kernel.gofer.open(path, flags)
    except OSError:
        return fd
    except BaseException:
        os.close(fd)
        raise
    ost = os.fstat(other)
    if (ost.st_dev, ost.st_ino) != (st.st_dev, st.st_ino):
        os.close(other)
        return fd
    os.close(fd)
    return other


# -- open ---------------------------------------------------------------------
def _reopen(ctx: SyscallContext, owner: bytes, num: int, flags: int,
            later: FdLater) -> int | None:
    """Open a descriptor the workload holds anew, as Linux's /proc/PID/fd/N magic link
    does: the same file (taken with pidfd_getfd, never looked up again by path), reopened
    by the gofer as the caller, so the kernel's own may_open decides (permissions, O_TRUNC
    and its set-user-ID rule, read-only mounts) and the gofer's device policy holds; a
    pipe's or FIFO's end that must wait for its peer is answered later (None)."""
    if owner != b"self":
        procfs = ctx.kernel.procfs
        if procfs is None or procfs.host_pid(int(owner)) is None:
            raise OSError(errno.ENOENT, "no such process")
        if procfs.translate(int(ctx.status()["Tgid"])) != int(owner):
            raise OSError(errno.EACCES, "another process's descriptor")
    if flags & os.O_NOFOLLOW:
        raise OSError(errno.ELOOP, "the last component is a link")
    if flags & os.O_CREAT and flags & os.O_EXCL:
        raise OSError(errno.EEXIST, "exists")
    try:
        held = _take_for_gofer(ctx, num)  # the gofer reopens it: its own mount's copy
    except OSError as e:
        if e.errno == errno.EBADF:
            raise OSError(errno.ENOENT, "no such descriptor") from None
        raise
    try:
        st = os.fstat(held)
        # Linux's order: the walk's O_DIRECTORY check, then may_open's (a socket ENXIO).
        if flags & os.O_DIRECTORY and not stat_mod.S_ISDIR(st.st_mode):
            raise OSError(errno.ENOTDIR, "not a directory")
        if stat_mod.S_ISSOCK(st.st_mode):
            raise OSError(errno.ENXIO, "a socket cannot be opened")
        if flags & os.O_PATH:  # openat2 (see _open): a read-only descriptor stands in
            flags = (flags & _O_PATH_KEEPS & ~os.O_PATH) | os.O_RDONLY
        if stat_mod.S_ISDIR(st.st_mode):
            if flags & os.O_ACCMODE != os.O_RDONLY or flags & os.O_TRUNC:
                raise OSError(errno.EISDIR, "a directory")
        result, fd = ctx.kernel.gofer.call(
            "reopen", ctx.creds(), later, fd=held, flags=flags & ~(os.O_CLOEXEC | os.O_CREAT))
        return None if result is LATER else fd
    finally:
        os.close(held)


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
    if flags & (os.O_TMPFILE & ~os.O_DIRECTORY):  # O_TMPFILE's own bit
        if flags & (os.O_TMPFILE | os.O_CREAT) != os.O_TMPFILE:
            raise OSError(errno.EINVAL, "O_TMPFILE with O_CREAT or without O_DIRECTORY")
        if flags & os.O_ACCMODE == os.O_RDONLY:
            raise OSError(errno.EINVAL, "O_TMPFILE needs write access")


def _open(ctx: SyscallContext, dirfd: int, addr: int, flags: int, mode: int,
          resolve: int = 0) -> None:
    _check_open_flags(flags)
    rel = read_path(ctx, addr)
    if resolve & RESOLVE_BENEATH and rel[:1] == b"/":
        raise OSError(errno.EXDEV, "an absolute path is never beneath")  # dirfd unused
    path = joined(ctx, dirfd, rel)
    if resolve & RESOLVE_IN_ROOT and rel[:1] == b"/":
        path = joined(ctx, dirfd, rel.lstrip(b"/") or b".")  # "/" is the directory itself
    lexical = norm(ctx, path)
    link = fd_link(lexical)
    if resolve & RESOLVE_NO_SYMLINKS and _through_proc_self(lexical):
        start = joined(ctx, dirfd, b".") if rel[:1] != b"/" else root_path(ctx)
        crosses = resolve & RESOLVE_NO_XDEV and not (start + b"/").startswith(b"/proc/")
        raise OSError(errno.EXDEV if crosses else errno.ELOOP, "/proc/self is a link")
    if resolve and link is not None:
        # The kernel refuses magic links under any of these restrictions, unless the walk
        # has already left its mount on the way into /proc.
        start = joined(ctx, dirfd, b".") if rel[:1] != b"/" else root_path(ctx)
        if resolve & RESOLVE_NO_XDEV and not (start + b"/").startswith(b"/proc/"):
            raise OSError(errno.EXDEV, "crosses into /proc")
        raise OSError(errno.ELOOP if resolve & (RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)
                      else errno.EXDEV, "a magic link")
    # A FIFO's (or pipe's) end waits in the gofer, and FdLater answers when it opens.
    later = FdLater(ctx, bool(flags & os.O_CLOEXEC))
    if link is not None:
        fd = _reopen(ctx, *link, flags, later)
    elif lexical == b"/dev/tty" and not flags & os.O_PATH and not resolve:
        fd = _controlling_tty(ctx, flags)
    else:
        if flags & os.O_PATH:
            # Only openat2 comes here with O_PATH (open and openat go to the kernel:
            # _native_o_path); its open_how is in memory, which another thread can
            # rewrite after the sentry read it, so it is never passed on. The kernel
            # will not install an O_PATH file into another process (ADDFD says EBADF):
            # give a read-only descriptor instead, opened as the caller. Differences
            # (README): F_GETFL shows O_RDONLY, read permission is needed, and
            # O_NOFOLLOW on a symlink gives ELOOP instead of the link itself.
            flags = (flags & _O_PATH_KEEPS & ~os.O_PATH) | os.O_RDONLY | os.O_NONBLOCK
        gofer_flags, mode = flags & ~os.O_CLOEXEC, mode & 0o7777
        if resolve & (RESOLVE_BENEATH | RESOLVE_IN_ROOT) or (resolve and rel[:1] != b"/"):
            # Resolved from the directory itself, not from the container root, so that
            # RESOLVE_BENEATH / IN_ROOT / NO_XDEV / NO_SYMLINKS mean what they do on Linux.
            base = prepared(ctx, joined(ctx, dirfd, b"."))
            fd = ctx.kernel.gofer.open(rel, gofer_flags, mode, ctx.creds(), later,
                                       base=base, resolve=resolve, root=gofer_root(ctx))
        else:
            fd = ctx.kernel.gofer.open(prepared(ctx, path), gofer_flags, mode,
                                       ctx.creds(), later, resolve=resolve,
                                       root=gofer_root(ctx))
    if fd is None:
        return ctx.defer()
    if ctx.kernel.procfs is not None:
        fd = ctx.kernel.procfs.content(fd)  # a /proc or /sys file: its content now
    try:
        ctx.install_fd(fd, bool(flags & os.O_CLOEXEC))
    finally:
        os.close(fd)


def _through_proc_self(path: bytes) -> bool:
    """Whether path walks through the /proc/self or /proc/thread-self link (made
    concrete for the caller before the gofer sees the path)."""
    parts = posixpath.normpath(path).split(b"/")
    return len(parts) > 2 and parts[1] == b"proc" and parts[2] in (b"self", b"thread-self")


def _lenient(flags: int) -> int:
    """open and openat ignore what O_PATH does not use; openat2 (and so the gofer) says
    EINVAL instead."""
    return flags & _O_PATH_KEEPS if flags & os.O_PATH else flags


def _native_o_path(ctx: SyscallContext, dirfd: int, addr: int) -> None:
    """open/openat with O_PATH in the flags register: the kernel opens it in the caller's
    own mount namespace, as execve and chdir are (sys_process.py; README Security, "O_PATH
    opens"), because the kernel will not install an O_PATH file into another process.
    The register cannot change, and O_PATH opens nothing: no read, write, truncation,
    creation or device open, whatever the path says when the kernel reads it. The sentry
    reads the path only to bring /proc up to date for it (the caller's self link, its fd
    directory); a path rewritten in between changes only which sandbox process's /proc
    skeleton the walk finds, which the caller could name directly."""
    procfs = ctx.kernel.procfs
    if procfs is None:
        return ctx.passthrough()
    try:
        path = joined(ctx, dirfd, read_path(ctx, addr))
    except OSError:
        return ctx.passthrough()  # the kernel gives the caller its own errno
    norm = posixpath.normpath(path)
    link = fd_link(norm)
    if link is not None and link[0] == b"self":  # /dev/std*, /dev/fd/N: through /proc/self
        norm = b"/proc/self/fd/%d" % link[1]
    elif norm == b"/dev/fd" or norm.startswith(b"/dev/fd/"):
        norm = b"/proc/self/fd" + norm[len(b"/dev/fd"):]
    if norm != b"/proc" and not norm.startswith(b"/proc/"):
        return ctx.passthrough()
    try:
        procfs.prepare(ctx, norm)
    except OSError:
        pass  # a process or entry that is not there: the kernel's walk says so itself
    procfs.point_self(ctx)
    ctx.passthrough()
    # The self link is shared by the sandbox: keep it the caller's until the kernel's walk
    # is over, before any other process's request can re-point it.
    procfs.hold_self(ctx.pid, ctx.nr)


def open_(ctx: SyscallContext) -> None:
    if _lenient(ctx.args[1]) & os.O_PATH:
        return _native_o_path(ctx, AT_FDCWD, ctx.args[0])
    _open(ctx, AT_FDCWD, ctx.args[0], _lenient(ctx.args[1]), ctx.args[2])


def openat(ctx: SyscallContext) -> None:
    if _lenient(ctx.args[2]) & os.O_PATH:
        return _native_o_path(ctx, ctx.args[0], ctx.args[1])
    _open(ctx, ctx.args[0], ctx.args[1], _lenient(ctx.args[2]), ctx.args[3])


def creat(ctx: SyscallContext) -> None:
    _open(ctx, AT_FDCWD, ctx.args[0], os.O_CREAT | os.O_WRONLY | os.O_TRUNC, ctx.args[1])




def _tail_zeroed(ctx: SyscallContext, addr: int, size: int) -> None:
    """copy_struct_from_user()'s check of the bytes past the struct the kernel knows,
    made before the struct is copied: E2BIG at the first nonzero byte, EFAULT only if an
    unreadable page comes first (found by the argument fuzzer: a nonzero byte before an
    unmapped page said EFAULT)."""
    end = addr + size
    while addr < end:
        chunk = min(end, (addr // 4096 + 1) * 4096) - addr  # up to the page's end
        if ctx.read(addr, chunk).strip(b"\0"):
            raise OSError(errno.E2BIG, "unknown open_how fields")
        addr += chunk


def openat2(ctx: SyscallContext) -> None:
    """openat2(2), with the kernel's checks of struct open_how in its order, and every
    RESOLVE_* flag applied by the gofer's own openat2 (inside the container root)."""
    how_addr, size = ctx.args[2], ctx.args[3]
    if size < 24:
        raise OSError(errno.EINVAL, "open_how too small")
    if size > argcheck.PAGE_SIZE:
        raise OSError(errno.E2BIG, "open_how too big")
    _tail_zeroed(ctx, how_addr + 24, size - 24)
    flags, mode, resolve = struct.unpack("QQQ", ctx.read(how_addr, 24))
    argcheck.open_flags(flags, mode, resolve)
    # (O_TMPFILE's own bit: os.O_TMPFILE includes O_DIRECTORY, which the cache can open)
    if resolve & RESOLVE_CACHED and flags & (os.O_CREAT | os.O_TRUNC
                                             | (os.O_TMPFILE & ~os.O_DIRECTORY)):
        raise OSError(errno.EAGAIN, "cannot be done from the cache")
    _open(ctx, ctx.args[0], ctx.args[1], flags, mode, resolve)


# -- stat family --------------------------------------------------------------
_STATX_SYNC = 0x6000


_STATX_DEV = struct.Struct("II")  # stx_dev_major, stx_dev_minor
_STATX_DEV_OFFSET = 0x88


def _stat_object(ctx: SyscallContext, dirfd: int, addr: int, flags: int,
                 statx_mask: int | None) -> bytes:
    """The raw struct stat/statx of what the call names, its device number the sandbox's
    own (the host's would say which disk and filesystem the container lives on)."""
    raw = bytearray(_host_stat(ctx, dirfd, addr, flags, statx_mask))
    if statx_mask is None:
        host = struct.unpack_from("Q", raw)[0]
        struct.pack_into("Q", raw, 0, ctx.kernel.sandbox_dev(host))
    else:
        major, minor = _STATX_DEV.unpack_from(raw, _STATX_DEV_OFFSET)
        dev = ctx.kernel.sandbox_dev(os.makedev(major, minor))
        _STATX_DEV.pack_into(raw, _STATX_DEV_OFFSET, os.major(dev), os.minor(dev))
    return bytes(raw)


def _host_stat(ctx: SyscallContext, dirfd: int, addr: int, flags: int,
               statx_mask: int | None) -> bytes:
    """As the host kernel fills it. A descriptor of the caller's (AT_EMPTY_PATH) is
    stat'ed on the sentry's own copy: fstat needs no permission."""
    target = _object(ctx, dirfd, addr, flags, null_ok=True)
    if isinstance(target, bytes):
        raw, _ = ctx.kernel.gofer.call("stat", ctx.creds(), path=target, root=gofer_root(ctx),
                                       follow=not flags & AT_SYMLINK_NOFOLLOW,
                                       statx_mask=statx_mask, sync=flags & _STATX_SYNC)
        return raw
    fd = ctx.take_fd(target)
    try:
        at_fd, name, at_flags = fd, b"", AT_EMPTY_PATH
        synthetic = ctx.kernel.procfs.placeholder(fd) if ctx.kernel.procfs else None
        if synthetic is not None:  # a /proc file's content: stat its placeholder
            at_fd, name = synthetic
            at_flags = AT_SYMLINK_NOFOLLOW
        if statx_mask is None:
            return host.fstatat_raw(at_fd, name, at_flags)
        return host.statx_raw(at_fd, name, at_flags | (flags & _STATX_SYNC), statx_mask)
    finally:
        os.close(fd)


def _names_nothing(ctx: SyscallContext, addr: int) -> bool:
    """A NULL or empty path (an unreadable one counts as a name, as in Linux's
    getname_maybe_null())."""
    try:
        return addr == 0 or ctx.read(addr, 1) == b"\0"
    except OSError as e:
        if e.errno == errno.EFAULT:
            return False
        raise


def _stat(ctx: SyscallContext, dirfd: int, addr: int, buf: int, flags: int,
          statx_mask: int | None = None) -> None:
    if not argcheck.stat_flags_valid(flags) and not _names_nothing(ctx, addr):
        # Unknown flags matter unless the descriptor alone is named (the pre-check let
        # that case through): Linux looks at the path's first byte only, then refuses.
        raise OSError(errno.EINVAL, "unknown flags")
    ctx.write(buf, _stat_object(ctx, dirfd, addr, flags, statx_mask))
    ctx.reply(0)


def fstat(ctx: SyscallContext) -> None:
    if as_int(ctx.args[0]) < 0:
        raise OSError(errno.EBADF, "bad file descriptor")
    _stat(ctx, ctx.args[0], 0, ctx.args[1], AT_EMPTY_PATH)


def stat(ctx: SyscallContext) -> None:
    _stat(ctx, AT_FDCWD, ctx.args[0], ctx.args[1], 0)


def lstat(ctx: SyscallContext) -> None:
    _stat(ctx, AT_FDCWD, ctx.args[0], ctx.args[1], AT_SYMLINK_NOFOLLOW)


def newfstatat(ctx: SyscallContext) -> None:
    _stat(ctx, ctx.args[0], ctx.args[1], ctx.args[2], ctx.args[3])


def statx(ctx: SyscallContext) -> None:
    dirfd, addr, flags, mask, buf = ctx.args[:5]
    _stat(ctx, dirfd, addr, buf, flags, mask & 0xFFFFFFFF)


def statfs(ctx: SyscallContext) -> None:
    raw, _ = _gofer(ctx, "statfs", path=at(ctx, AT_FDCWD, ctx.args[0]))
    ctx.write(ctx.args[1], raw)
    ctx.reply(0)


# -- extended attributes ---------------------------------------------------------
_XATTR_NAME_MAX, _XATTR_SIZE_MAX = 255, 65536


def _xattr_name(ctx: SyscallContext, addr: int) -> bytes:
    try:
        name = ctx.read_cstring(addr, _XATTR_NAME_MAX + 1)
    except OSError as e:
        raise OSError(errno.ERANGE if e.errno == errno.ENAMETOOLONG else e.errno,
                      "xattr name") from None
    if not name:
        raise OSError(errno.ERANGE, "empty xattr name")
    return name


def _getxattr(ctx: SyscallContext, follow: bool) -> None:
    name = _xattr_name(ctx, ctx.args[1])
    size = min(ctx.args[3], _XATTR_SIZE_MAX)
    value, _ = _gofer(ctx, "xattr", path=at(ctx, AT_FDCWD, ctx.args[0]), follow=follow,
                      action="get", name=name, size=size)
    if isinstance(value, bytes):
        ctx.write(ctx.args[2], value)
        value = len(value)
    ctx.reply(value)


def _setxattr(ctx: SyscallContext, follow: bool) -> None:
    name = _xattr_name(ctx, ctx.args[1])
    size, flags = ctx.args[3], ctx.args[4]
    if size > _XATTR_SIZE_MAX:
        raise OSError(errno.E2BIG, "xattr value too large")
    value = ctx.read(ctx.args[2], size) if size else b""
    _gofer(ctx, "xattr", path=at(ctx, AT_FDCWD, ctx.args[0]), follow=follow, action="set",
           name=name, value=value, flags=flags)
    ctx.reply(0)


def _listxattr(ctx: SyscallContext, follow: bool) -> None:
    size = min(ctx.args[2], _XATTR_SIZE_MAX)
    names, _ = _gofer(ctx, "xattr", path=at(ctx, AT_FDCWD, ctx.args[0]), follow=follow,
                      action="list", size=size)
    if isinstance(names, bytes):
        ctx.write(ctx.args[1], names)
        names = len(names)
    ctx.reply(names)


def _removexattr(ctx: SyscallContext, follow: bool) -> None:
    name = _xattr_name(ctx, ctx.args[1])
    _gofer(ctx, "xattr", path=at(ctx, AT_FDCWD, ctx.args[0]), follow=follow,
           action="remove", name=name)
    ctx.reply(0)


def getxattr(ctx: SyscallContext) -> None:
    _getxattr(ctx, True)


def lgetxattr(ctx: SyscallContext) -> None:
    _getxattr(ctx, False)


def setxattr(ctx: SyscallContext) -> None:
    _setxattr(ctx, True)


def lsetxattr(ctx: SyscallContext) -> None:
    _setxattr(ctx, False)


def listxattr(ctx: SyscallContext) -> None:
    _listxattr(ctx, True)


def llistxattr(ctx: SyscallContext) -> None:
    _listxattr(ctx, False)


def removexattr(ctx: SyscallContext) -> None:
    _removexattr(ctx, True)


def lremovexattr(ctx: SyscallContext) -> None:
    _removexattr(ctx, False)


# -- access -------------------------------------------------------------------
def _access(ctx: SyscallContext, dirfd: int, addr: int, mode: int, flags: int) -> None:
    creds = ctx.creds()
    if not flags & AT_EACCESS:
        # access() checks as the real ids, with the permitted capabilities for a real
        # root and none otherwise (the kernel's access_override_creds).
        ruid, rgid = ctx.real_ids()
        caps = int(ctx.status()["CapPrm"], 16) if ruid == 0 else 0
        creds = (ruid, rgid, creds[2], creds[3], caps)
    _on_object(ctx, dirfd, addr, flags, "access", creds, mode=mode,
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
    if read_path(ctx, addr) == b"":
        if as_int(dirfd) == AT_FDCWD:
            raise OSError(errno.ENOENT, "empty path")
        # The descriptor's own link (an O_PATH|O_NOFOLLOW symlink): reading a link's
        # text needs no permission, so the sentry reads its own copy.
        fd = ctx.take_fd(as_int(dirfd))
        try:
            target = os.readlink(b"", dir_fd=fd)
        finally:
            os.close(fd)
    else:
        target, _ = _gofer(ctx, "readlink", path=at(ctx, dirfd, addr))
    data = target[:size]
    ctx.write(buf, data)
    ctx.reply(len(data))


def readlink(ctx: SyscallContext) -> None:
    _readlink(ctx, AT_FDCWD, ctx.args[0], ctx.args[1], ctx.args[2])


def readlinkat(ctx: SyscallContext) -> None:
    _readlink(ctx, ctx.args[0], ctx.args[1], ctx.args[2], ctx.args[3])


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
    # Only a device's number matters, and only 0:0 (an overlay whiteout, which Linux lets
    # anyone make) can be made in the sandbox; the number of anything else is ignored.
    is_device = stat_mod.S_ISCHR(mode) or stat_mod.S_ISBLK(mode)
    _gofer(ctx, "mknod", path=at(ctx, dirfd, addr), mode=mode,
           dev=(dev & 0xFFFFFFFF) if is_device else 0)
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
    old_path = at(ctx, olddir, old)
    new_path = _second_path(ctx, newdir, new, lambda: _gofer(
        ctx, "check_dir", path=old_path.rstrip(b"/").rpartition(b"/")[0] or b"/"))
    _gofer(ctx, "rename", old=old_path, new=new_path, flags=flags)
    ctx.reply(0)


def _second_path(ctx: SyscallContext, dirfd: int, addr: int, first_lookup) -> bytes:
    """The second path of link or rename. Linux copies both names first but looks the
    first one up before it uses the second: a bad second name or dirfd (EFAULT,
    ENAMETOOLONG, EBADF, ENOTDIR) only shows once the first lookup succeeded."""
    try:
        return at(ctx, dirfd, addr)
    except OSError:
        first_lookup()
        raise


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
    follow = bool(flags & AT_SYMLINK_FOLLOW)
    # The old name as an *at() object: with AT_EMPTY_PATH and "", the descriptor itself.
    target = _object(ctx, olddir, old,
                     (flags & AT_EMPTY_PATH) | (0 if follow else AT_SYMLINK_NOFOLLOW))
    if isinstance(target, int):
        fd = _take_for_gofer(ctx, target)
        try:
            new_path = at(ctx, newdir, new)
            ctx.kernel.gofer.call("link", ctx.creds(), fd=fd, old=None, new=new_path,
                                  follow=follow, root=gofer_root(ctx))
        finally:
            os.close(fd)
        return ctx.reply(0)
    new_path = _second_path(ctx, newdir, new, lambda: _gofer(
        ctx, "stat", path=target, follow=follow, statx_mask=None, sync=0))
    _gofer(ctx, "link", old=target, new=new_path, follow=follow)
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
    _on_object(ctx, dirfd, addr, flags, "chmod", mode=mode & 0o7777,
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
    _on_object(ctx, dirfd, addr, flags, "chown", uid=uid & 0xFFFFFFFF,
               gid=gid & 0xFFFFFFFF, follow=not flags & AT_SYMLINK_NOFOLLOW)
    ctx.reply(0)


def chown(ctx: SyscallContext) -> None:
    _chown(ctx, AT_FDCWD, ctx.args[0], ctx.args[1], ctx.args[2], 0)


def lchown(ctx: SyscallContext) -> None:
    _chown(ctx, AT_FDCWD, ctx.args[0], ctx.args[1], ctx.args[2], AT_SYMLINK_NOFOLLOW)


def fchownat(ctx: SyscallContext) -> None:
    _chown(ctx, ctx.args[0], ctx.args[1], ctx.args[2], ctx.args[3], ctx.args[4])


def _not_o_path(ctx: SyscallContext, num: int) -> None:
    """futimens() and futimesat(fd, NULL) want an open file: EBADF for an O_PATH one."""
    fd = ctx.take_fd(num)
    try:
        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_PATH:
            raise OSError(errno.EBADF, "an O_PATH descriptor")
    finally:
        os.close(fd)


def _utimens(ctx: SyscallContext, dirfd: int, addr: int, times: bytes | None,
             flags: int) -> None:
    if addr == 0 and as_int(dirfd) != AT_FDCWD:
        _not_o_path(ctx, as_int(dirfd))
    _on_object(ctx, dirfd, addr, flags, "utimens", null_ok=True, times=times,
               follow=not flags & AT_SYMLINK_NOFOLLOW)
    ctx.reply(0)


def utimensat(ctx: SyscallContext) -> None:
    dirfd, addr, times_addr, flags = ctx.args[:4]
    times = ctx.read(times_addr, 32) if times_addr else None
    if addr == 0:  # futimens(): the descriptor itself, and no flags
        if as_int(dirfd) == AT_FDCWD:
            raise OSError(errno.EFAULT, "bad address")
        if flags:
            raise OSError(errno.EINVAL, "flags without a path")
        flags = AT_EMPTY_PATH
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
    dirfd, addr = ctx.args[0], ctx.args[1]
    if addr == 0 and as_int(dirfd) == AT_FDCWD:
        raise OSError(errno.EFAULT, "bad address")
    # A NULL path names the descriptor itself, as utimensat's does.
    _utimens(ctx, dirfd, addr, _timevals(ctx, ctx.args[2]), AT_EMPTY_PATH if addr == 0 else 0)


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
    fsize = ctx.file_size_limit()
    try:
        _on_object(ctx, AT_FDCWD, ctx.args[0], 0, "truncate", length=length, fsize=fsize)
    except OSError as e:
        if (e.errno == errno.EFBIG and fsize is not None and length > fsize
                and ctx.kernel.signal_thread is not None):
            # Linux signals the caller too (SIGXFSZ: it ends the process unless handled),
            # on the call's return: pending before the answer (the wait for it does not
            # end for a signal once the sentry has the call: WAIT_KILLABLE_RECV).
            ctx.kernel.signal_thread(ctx.pid, signal.SIGXFSZ)
        raise
    ctx.reply(0)
