"""The gofer: the only process that holds the container's filesystem.

It runs in its own mount namespace whose root is the container tree (gofer.mounts), and
serves path operations for the sentry. Every path is resolved by the kernel with
openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS), so `..` and symlinks cannot leave the
root. Operations run with the calling workload thread's fsuid, fsgid, groups and umask.
One request at a time, except a FIFO open that must wait for the other end: that waits in
a thread of its own and is answered later (protocol.py), so nothing the workload owns
blocks the gofer. It imports nothing of the sentry.
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import signal
import socket
import stat
import struct
import threading

from gofer import confine, devices, mounts, protocol
from syscalls import abi, host

_libc = ctypes.CDLL(None, use_errno=True)
_SOCKADDR_UN_SIZE = 110  # sa_family + sun_path[108]
_XATTR_ARGS = struct.Struct("QII")  # struct xattr_args: value pointer, size, flags
_RESOLVE = abi.RESOLVE_IN_ROOT | abi.RESOLVE_NO_MAGICLINKS
# open(2) ignores unknown flag bits, openat2(2) refuses them: keep only real ones.
_OPEN_FLAGS = (os.O_ACCMODE | os.O_CREAT | os.O_EXCL | os.O_NOCTTY | os.O_TRUNC | os.O_APPEND
               | os.O_NONBLOCK | os.O_DSYNC | os.O_SYNC | os.O_DIRECT | os.O_LARGEFILE
               | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NOATIME | os.O_CLOEXEC | os.O_PATH
               | os.O_TMPFILE | 0o20000)  # FASYNC
_O_TMPFILE_BIT = os.O_TMPFILE & ~os.O_DIRECTORY  # O_TMPFILE includes O_DIRECTORY's bit
# What the O_PATH look-up took care of, and what a reopen through /proc/self/fd must not
# repeat (O_NOFOLLOW would refuse the magic link itself).
_LOOKUP_FLAGS = os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_DIRECTORY
_WAITER_STACK = 256 * 1024  # a waiting open's thread runs one open() and one send


class _Waiting:
    """An open that waits in a gofer thread for the FIFO's other end (as the calling
    workload thread waits in Linux), answered later under the request's id."""
    __slots__ = ("rid", "pfd", "flags", "thread", "finished", "cancelled")

    def __init__(self, rid: int, pfd: int, flags: int) -> None:
        self.rid, self.pfd, self.flags = rid, pfd, flags
        self.thread: threading.Thread | None = None
        self.finished = False  # its open returned: the thread must not be signalled
        self.cancelled = False


# The waiting threads' open: through libc, so that a signal ends it with EINTR (os.open
# retries), and with no buffer shared between threads (host.openat2 has one).
_openat = ctypes.CDLL(None, use_errno=True).openat
_openat.restype = ctypes.c_int
_openat.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint)
_CANCEL_SIGNAL = signal.SIGUSR1


_UTIME_NOW = (1 << 30) - 1


def _pid_entry_depth(path: bytes | None) -> int:
    """0 outside a process's /proc directory, 1 for the directory, 2+ inside it."""
    parts = (path or b"").strip(b"/").split(b"/")
    return len(parts) - 1 if len(parts) > 1 and parts[1].isdigit() else 0


class Gofer:
    def __init__(self, sock: socket.socket, procfd: int,
                 synthetic: dict[str, tuple[int, str]] | None = None,
                 device_policy: devices.Policy | None = None,
                 readonly_paths: list[str] = ()) -> None:
        self.sock = sock
        self.readonly_paths = [os.fsencode(os.path.normpath(p)) for p in readonly_paths]
        self.device_policy = device_policy or devices.Policy()
        # Mount point -> writable clone of the synthetic mount, until the sentry takes it.
        self.synthetic = {dest: fd for dest, (fd, _) in (synthetic or {}).items()}
        self.proc_devs = {os.fstat(fd).st_dev for fd, mtype in (synthetic or {}).values()
                          if mtype == "proc"}
        self.passed: int | None = None  # the descriptor sent with the current request
        self.rootfd = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        # The calling process's root when it is not the container root (chroot): its
        # container path and a descriptor of it, for this request only.
        self.chroot: tuple[bytes, int] | None = None
        self.procfd = procfd  # its own /proc, only to reopen its own descriptors
        self.rid: int | None = None  # the current request's id, if it may be answered later
        self.waiting: dict[int, _Waiting] = {}
        self.lock = threading.Lock()  # self.waiting, shared with the waiting threads
        self.creds: tuple | None = None
        self.set_capabilities(*host.capget()[1:])

    def set_capabilities(self, permitted: int, inheritable: int) -> None:
        """The capabilities the gofer has to lend its callers (after confine.apply)."""
        self.permitted, self.inheritable = permitted, inheritable
        self.creds = None
        # The sentry's own requests (no workload thread behind them) run as root with
        # all of them.
        self.own_creds = (0, 0, [], 0o022, self.permitted)

    # -- helpers ---------------------------------------------------------------
    def _resolve(self, path: bytes | None, flags: int, mode: int = 0) -> int:
        """A descriptor of path, from the container root. path None names the open file
        the sentry sent with the request (a workload descriptor, for AT_EMPTY_PATH)."""
        if path is None:
            if self.passed is None:
                raise OSError(errno.EBADF, "no descriptor sent")
            return os.dup(self.passed)
        start, rel = self._start(path)
        rel = rel.lstrip(b"/")
        if not rel and flags & os.O_PATH:
            # The root itself: no lookup, so no search permission on it (openat2 of "."
            # would ask for one that Linux's chmod("/") or stat("/") never needs).
            return fcntl.fcntl(start, fcntl.F_DUPFD_CLOEXEC, 0)
        return host.openat2(start, rel or b".", flags | os.O_CLOEXEC, mode, _RESOLVE)

    def _start(self, path: bytes) -> tuple[int, bytes]:
        """Where a container path is resolved from, and the path from there: the caller's
        root (a chroot) for a path below it, so that `..` and absolute symlinks stop
        there as on Linux; the container root otherwise (a relative path from a cwd
        outside the chroot). Either way inside the container root: chroot only narrows."""
        if self.chroot is not None:
            root, fd = self.chroot
            if path == root or path.startswith(root + b"/"):
                return fd, path[len(root):]
        return self.rootfd, path

    def _use_root(self, root: object) -> None:
        """Open the caller's root, a canonical container path as the kernel shows it in
        /proc/TID/root, through no symlink, so that a link put in its place since cannot
        make it name another directory. As the caller, or where that is refused (a
        directory above the root it cannot search), with the gofer's own credentials:
        the kernel holds a process's root without any permission check."""
        self.chroot = None
        if root is None:
            return
        if not isinstance(root, bytes) or root[:1] != b"/" or b"\0" in root:
            raise OSError(errno.EINVAL, "bad root")
        root = root.rstrip(b"/")
        if not root:
            return
        fd = host.openat2(self.rootfd, root.lstrip(b"/"), os.O_PATH | os.O_DIRECTORY
                           | os.O_CLOEXEC, 0, _RESOLVE | abi.RESOLVE_NO_SYMLINKS)
        self.chroot = (root, fd)

    def _drop_root(self) -> None:
        if self.chroot is not None:
            os.close(self.chroot[1])
            self.chroot = None


    def _parent(self, path: bytes) -> tuple[int, bytes]:
        """An O_PATH descriptor of path's parent directory and its last component."""
        stripped = path.rstrip(b"/")
        if not self._start(path)[1].strip(b"/"):  # the root (the caller's: a chroot's)
            return self._resolve(path, os.O_PATH | os.O_DIRECTORY), b"."
        head, _, name = stripped.rpartition(b"/")
        if path.endswith(b"/"):
            name += b"/"  # keep the kernel's trailing-slash semantics
        fd = self._resolve(head or b"/", os.O_PATH | os.O_DIRECTORY)
        try:
            # The kernel looks the last component up in the parent, which needs search
            # permission there, before it looks at any other path of the call.
            host.faccess_fd(fd, os.X_OK, effective=True)
        except OSError:
            os.close(fd)
            raise
        return fd, name

    def _set_creds(self, creds: tuple | list | None) -> None:
        """Act as the calling thread: its fsuid, fsgid, groups, umask and effective
        capabilities (the gofer's own are a superset: it runs as root)."""
        uid, gid, groups, umask, caps = creds if creds is not None else self.own_creds
        groups = tuple(groups)
        os.umask(umask)
        if self.creds == (uid, gid, groups, caps):
            return
        # Back to full capabilities first: setgroups needs CAP_SETGID, which the last
        # caller may not have had.
        host.capset(self.permitted, self.permitted, self.inheritable)
        _libc.setfsuid(0)
        _libc.setfsgid(0)
        # The raw syscall: glibc's setgroups changes every thread, and a waiting open's
        # thread keeps the credentials of the request it serves.
        host.syscall(abi.NR_SETGROUPS, len(groups), (ctypes.c_uint * len(groups))(*groups))
        _libc.setfsgid(gid)
        _libc.setfsuid(uid)
        # After setfsuid, which drops or restores the filesystem capabilities by itself.
        host.capset(caps & self.permitted, self.permitted, self.inheritable)
        self.creds = (uid, gid, groups, caps)

    def _check_device(self, fd: int, st: os.stat_result | None = None,
                      flags: int | None = None) -> None:
        """EPERM for a device file the container may not open this way (the devices
        cgroup's answer); flags: the open's, else fd's own."""
        st = st or os.fstat(fd)
        if not (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)):
            return
        accmode = (flags if flags is not None else fcntl.fcntl(fd, fcntl.F_GETFL)) \
            & os.O_ACCMODE
        access = {os.O_RDONLY: "r", os.O_WRONLY: "w"}.get(accmode, "rw")
        if not self.device_policy.check(st, access):
            raise OSError(errno.EPERM, "device not available in the sandbox")

    # -- operations: each returns (result, fd or None) -------------------------
    def op_open(self, path: bytes, flags: int, mode: int, base: bytes | None = None,
                resolve: int = 0):
        flags &= _OPEN_FLAGS
        if not flags & (os.O_CREAT | _O_TMPFILE_BIT):  # the kernel's WILL_CREATE()
            mode = 0
        if resolve:
            return self._open_resolve(path, flags, mode, base, resolve)
        if flags & (os.O_PATH | _O_TMPFILE_BIT) or flags & (os.O_CREAT | os.O_EXCL) == (
                os.O_CREAT | os.O_EXCL):
            # Opens no file's contents, or only one it creates: never a FIFO's end.
            fd = self._resolve(path, flags, mode)
            try:
                if not flags & os.O_PATH:
                    self._check_device(fd)
            except OSError:
                os.close(fd)
                raise
            return None, fd
        if flags & os.O_CREAT:
            return self._open_creat(path, flags, mode)
        # Look the file up first (O_PATH opens nothing) and decide on what fstat says it
        # is (DESIGN.md): even a moment's read end of a FIFO would let a waiting writer in.
        pfd = self._resolve(path, os.O_PATH | (flags & (os.O_NOFOLLOW | os.O_DIRECTORY)))
        return self.open_fd(pfd, flags)

    def _open_resolve(self, path: bytes, flags: int, mode: int, base: bytes | None,
                      resolve: int):
        """openat2 with the caller's RESOLVE_* restrictions: from its directory (base)
        or the root, beneath the gofer's root all the same ('..' and absolute links stop
        at the container root, this process's root), and never through a magic link.
        The look-up is O_PATH, so a FIFO is opened as open_fd opens one."""
        if base is not None:
            dirfd, rel = self._resolve(base, os.O_PATH | os.O_DIRECTORY), path
            resolve |= abi.RESOLVE_NO_MAGICLINKS
        else:
            start, rel = self._start(path)
            dirfd, rel = os.dup(start), rel.lstrip(b"/") or b"."
            resolve |= _RESOLVE
        try:
            if flags & (os.O_CREAT | _O_TMPFILE_BIT | os.O_PATH):
                # Creates what it opens (an existing FIFO's reader does not wait: README).
                fd = host.openat2(dirfd, rel, flags | os.O_CLOEXEC | os.O_NONBLOCK, mode,
                                   resolve)
                if not flags & os.O_NONBLOCK and not flags & os.O_PATH:
                    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL)
                                & ~os.O_NONBLOCK)
                return None, fd
            pfd = host.openat2(dirfd, rel, os.O_PATH | os.O_CLOEXEC
                                | (flags & (os.O_NOFOLLOW | os.O_DIRECTORY)), 0, resolve)
        finally:
            os.close(dirfd)
        return self.open_fd(pfd, flags)

    def _open_creat(self, path: bytes, flags: int, mode: int):
        """O_CREAT without O_EXCL: by path, for the kernel's checks on an existing file
        (fs.protected_fifos and _regular), and O_NONBLOCK, so that a FIFO's writer with no
        reader fails at once (ENXIO, after those checks) rather than waiting here."""
        blocking = not flags & os.O_NONBLOCK
        if blocking and flags & os.O_ACCMODE == os.O_RDONLY:
            # Not even a moment's read end of a FIFO (the kernel's fs.protected_fifos
            # check is skipped then; README).
            try:
                pfd = self._resolve(path, os.O_PATH | (flags & os.O_NOFOLLOW))
            except OSError:
                pass  # the open says what is wrong, or creates the file
            else:
                if stat.S_ISFIFO(os.fstat(pfd).st_mode):
                    return self.open_fd(pfd, flags)
                os.close(pfd)
        try:
            fd = self._resolve(path, flags | os.O_NONBLOCK, mode)
        except OSError as e:
            if not (e.errno == errno.ENXIO and blocking
                    and flags & os.O_ACCMODE == os.O_WRONLY):
                raise
            pfd = self._resolve(path, os.O_PATH | (flags & os.O_NOFOLLOW))
            if not stat.S_ISFIFO(os.fstat(pfd).st_mode):  # a socket, say
                os.close(pfd)
                raise
            return self.open_fd(pfd, flags)
        try:
            st = os.fstat(fd)
            if (stat.S_ISFIFO(st.st_mode) and blocking
                    and flags & os.O_ACCMODE == os.O_RDONLY):
                # A FIFO made since the look-up: the reader waits in a thread. (This read
                # end lived only for this request; a writer waiting meanwhile saw it.)
                pfd = self._reopen(fd, os.O_PATH)
            else:
                self._check_device(fd, st)
                if blocking:
                    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL)
                                & ~os.O_NONBLOCK)
                return None, fd
        except OSError:
            os.close(fd)
            raise
        os.close(fd)
        return self.open_fd(pfd, flags)

    def _reopen(self, fd: int, flags: int) -> int:
        """The file fd names, opened anew (Linux's /proc/self/fd/N), with flags."""
        return os.open(f"self/fd/{fd}", (flags & ~_LOOKUP_FLAGS) | os.O_CLOEXEC,
                       dir_fd=self.procfd)

    def open_fd(self, pfd: int, flags: int):
        """Open what pfd (an O_PATH descriptor, which this takes over) names, with flags.
        A FIFO end that must wait for its peer waits in a thread; the answer comes later."""
        keep = False
        try:
            st = os.fstat(pfd)
            if stat.S_ISLNK(st.st_mode):
                raise OSError(errno.ELOOP, "a symbolic link (O_NOFOLLOW)")
            if flags & os.O_CREAT and stat.S_ISDIR(st.st_mode):
                raise OSError(errno.EISDIR, "O_CREAT on a directory")
            self._check_device(pfd, st, flags)
            accmode = flags & os.O_ACCMODE
            if (stat.S_ISFIFO(st.st_mode) and not flags & os.O_NONBLOCK
                    and accmode != os.O_RDWR):
                if accmode == os.O_WRONLY:
                    try:  # with a reader there already, a writer does not wait
                        fd = self._reopen(pfd, flags | os.O_NONBLOCK)
                    except OSError as e:
                        if e.errno != errno.ENXIO:
                            raise
                    else:
                        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL)
                                    & ~os.O_NONBLOCK)
                        return None, fd
                if self.rid is None:
                    raise OSError(errno.EAGAIN, "a FIFO open would wait, and cannot")
                keep = True
                return _Waiting(self.rid, pfd, flags), None
            return None, self._reopen(pfd, flags)
        finally:
            if not keep:
                os.close(pfd)

    def op_reopen(self, flags: int):
        """/proc/PID/fd/N of a workload descriptor (the one sent with the request),
        reopened as the caller: the kernel's may_open decides, as for the workload's own
        open of the magic link."""
        if self.passed is None:
            raise OSError(errno.EBADF, "no descriptor sent")
        return self.open_fd(fcntl.fcntl(self.passed, fcntl.F_DUPFD_CLOEXEC, 0),
                            flags & _OPEN_FLAGS)

    def _wait(self, w: _Waiting) -> None:
        """A waiting open's thread: it has the request's credentials (a new thread takes
        its creator's) and waits in the kernel as the workload thread would, until the
        other end opens or a cancel's signal interrupts it."""
        path = f"self/fd/{w.pfd}".encode()
        flags = (w.flags & ~_LOOKUP_FLAGS) | os.O_CLOEXEC
        while True:
            fd = _openat(self.procfd, path, flags, 0)
            err = ctypes.get_errno() if fd < 0 else 0
            with self.lock:
                if err != errno.EINTR or w.cancelled:
                    w.finished = True
                    del self.waiting[w.rid]
                    os.close(w.pfd)
                    break
        if w.cancelled:
            err = errno.EINTR
            if fd >= 0:
                os.close(fd)
                fd = -1
        try:
            if fd < 0:
                protocol.send(self.sock, {"id": w.rid, "errno": err or errno.EIO})
            else:
                protocol.send(self.sock, {"id": w.rid, "ok": None}, fd)
        except OSError:
            pass  # the sentry has gone: the gofer exits
        finally:
            if fd >= 0:
                os.close(fd)

    def _cancel(self, rid: object) -> None:
        """The workload thread no longer waits (a signal, or its death): interrupt the
        gofer thread's open. The sentry repeats this until the answer (EINTR) comes: a
        signal that lands just before the thread enters open() is lost."""
        with self.lock:
            w = self.waiting.get(rid) if isinstance(rid, int) else None
            if w is None or w.finished or w.thread is None or w.thread.ident is None:
                return  # answered already, or not started yet
            w.cancelled = True
            signal.pthread_kill(w.thread.ident, _CANCEL_SIGNAL)

    def op_synthetic_root(self, path: bytes):
        """The writable clone of a synthetic mount, handed to the sentry once (the gofer
        keeps no copy: it never writes there)."""
        return None, self.synthetic.pop(os.fsdecode(path))

    def op_stat(self, path: bytes, follow: bool, statx_mask: int | None, sync: int):
        fd = self._resolve(path, os.O_PATH | (0 if follow else os.O_NOFOLLOW))
        try:
            if statx_mask is None:
                raw = host.fstatat_raw(fd, b"", abi.AT_EMPTY_PATH)
            else:
                raw = host.statx_raw(fd, b"", abi.AT_EMPTY_PATH | sync, statx_mask)
        finally:
            os.close(fd)
        return raw, None

    def op_statfs(self, path: bytes):
        fd = self._resolve(path, os.O_PATH)
        try:
            return host.fstatfs_raw(fd), None
        finally:
            os.close(fd)

    def op_access(self, path: bytes, mode: int, follow: bool):
        """access(2) as the credentials set for this request (the sentry passes the real
        ids when the call asked for them)."""
        fd = self._resolve(path, os.O_PATH | (0 if follow else os.O_NOFOLLOW))
        try:
            host.faccess_fd(fd, mode, effective=True)
        finally:
            os.close(fd)
        return 0, None

    def op_readlink(self, path: bytes):
        fd = self._resolve(path, os.O_PATH | os.O_NOFOLLOW)
        try:
            return os.readlink(b"", dir_fd=fd), None
        except FileNotFoundError:
            raise OSError(errno.EINVAL, "not a symbolic link") from None
        finally:
            os.close(fd)

    def op_check_dir(self, path: bytes):
        """chdir's checks: a directory, searchable by the caller."""
        fd = self._resolve(path, os.O_PATH | os.O_DIRECTORY)
        try:
            host.faccess_fd(fd, os.X_OK, effective=True)
        finally:
            os.close(fd)
        return 0, None

    def op_check_exec(self, path: bytes):
        """execve's checks: a regular file the caller may execute."""
        fd = self._resolve(path, os.O_PATH)
        try:
            st = os.fstat(fd)
            if stat.S_ISDIR(st.st_mode) or not stat.S_ISREG(st.st_mode):
                raise OSError(errno.EACCES, "not a regular file")
            host.faccess_fd(fd, os.X_OK, effective=True)
        finally:
            os.close(fd)
        return 0, None

    def _at_parent(self, path: bytes, fn):
        parent, name = self._parent(path)
        try:
            return fn(parent, name)
        finally:
            os.close(parent)

    def op_mkdir(self, path: bytes, mode: int):
        self._at_parent(path, lambda d, n: os.mkdir(n, mode, dir_fd=d))
        return 0, None

    def op_mknod(self, path: bytes, mode: int, dev: int):
        whiteout = stat.S_ISCHR(mode) and dev == 0  # Linux needs no CAP_MKNOD for it
        if stat.S_IFMT(mode) in (stat.S_IFCHR, stat.S_IFBLK) and not whiteout:
            self._at_parent(path, self._refuse_device)
        self._at_parent(path, lambda d, n: os.mknod(n, mode, dev, dir_fd=d))
        return 0, None

    @staticmethod
    def _refuse_device(parent: int, name: bytes) -> None:
        """No device nodes in the sandbox: EPERM, but only where Linux would get as far
        as its CAP_MKNOD check (after EEXIST and the parent's write permission)."""
        try:  # (the name itself, whatever a trailing slash would make of a link)
            os.stat(name.rstrip(b"/") or name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            pass
        else:
            raise OSError(errno.EEXIST, "file exists")
        if name.endswith(b"/"):  # a missing name asked for as a directory
            raise OSError(errno.ENOENT, "no such directory")
        host.faccess_fd(parent, os.W_OK | os.X_OK, effective=True)
        raise OSError(errno.EPERM, "device nodes cannot be created in the sandbox")

    def op_symlink(self, target: bytes, path: bytes):
        self._at_parent(path, lambda d, n: os.symlink(target, n, dir_fd=d))
        return 0, None

    def op_unlink(self, path: bytes, rmdir: bool):
        if rmdir and not self._start(path)[1].strip(b"/"):
            raise OSError(errno.EBUSY, "the root")  # Linux's LAST_ROOT case (or a chroot's)
        if rmdir:
            self._at_parent(path, lambda d, n: os.rmdir(n, dir_fd=d))
        else:
            self._at_parent(path, lambda d, n: os.unlink(n, dir_fd=d))
        return 0, None

    def op_rename(self, old: bytes, new: bytes, flags: int):
        op, on = self._parent(old)
        try:
            self._at_parent(new, lambda d, n: host.renameat2(op, on, d, n, flags))
        finally:
            os.close(op)
        return 0, None

    def op_link(self, old: bytes, new: bytes, follow: bool):
        src = self._resolve(old, os.O_PATH | (0 if follow else os.O_NOFOLLOW))
        try:
            self._at_parent(new, lambda d, n: host.syscall(
                abi.NR_LINKAT, src, b"", d, n, abi.AT_EMPTY_PATH))
        finally:
            os.close(src)
        return 0, None

    def op_chmod(self, path: bytes, mode: int, follow: bool):
        fd = self._resolve(path, os.O_PATH | (0 if follow else os.O_NOFOLLOW))
        try:
            host.fchmodat2(fd, b"", mode, abi.AT_EMPTY_PATH)
        finally:
            os.close(fd)
        return 0, None

    def op_chown(self, path: bytes, uid: int, gid: int, follow: bool):
        fd = self._resolve(path, os.O_PATH | (0 if follow else os.O_NOFOLLOW))
        try:
            host.syscall(abi.NR_FCHOWNAT, fd, b"", uid, gid, abi.AT_EMPTY_PATH)
        finally:
            os.close(fd)
        return 0, None

    def op_utimens(self, path: bytes, times: bytes | None, follow: bool):
        fd = self._resolve(path, os.O_PATH | (0 if follow else os.O_NOFOLLOW))
        try:
            host.utimensat(fd, b"", times, abi.AT_EMPTY_PATH)
        finally:
            os.close(fd)
        return 0, None

    def op_truncate(self, path: bytes, length: int, fsize: int | None = None):
        """truncate(2) as the caller, whose RLIMIT_FSIZE is fsize: growing a file past it
        is EFBIG after every permission check, as the kernel's inode_newsize_ok says (the
        caller then gets SIGXFSZ from the sentry)."""
        fd = self._resolve(path, os.O_PATH)
        try:
            # truncate(2) checks the type first, and must never open a FIFO.
            mode = os.fstat(fd).st_mode
            if stat.S_ISDIR(mode):
                raise OSError(errno.EISDIR, "a directory")
            if not stat.S_ISREG(mode):
                raise OSError(errno.EINVAL, "not a regular file")
            wfd = self._reopen(fd, os.O_WRONLY)
        finally:
            os.close(fd)
        try:
            if fsize is not None and length > fsize and os.fstat(wfd).st_size < length:
                raise OSError(errno.EFBIG, "past the caller's file size limit")
            os.ftruncate(wfd, length)
        finally:
            os.close(wfd)
        return 0, None

    def op_xattr(self, path: bytes, follow: bool, action: str, name: bytes = b"",
                 value: bytes = b"", size: int = 0, flags: int = 0):
        """getxattr, setxattr, listxattr and removexattr (and their l* forms) of path,
        as the caller, through the *xattrat calls (Linux 6.13) from its parent directory,
        looked up in the container tree (they take no O_PATH descriptor of the file)."""
        parent, last = self._parent(path)
        at = (0 if follow else abi.AT_SYMLINK_NOFOLLOW)
        try:
            st = os.stat(last, dir_fd=parent, follow_symlinks=follow)
            if st.st_dev in self.proc_devs:  # procfs keeps no extended attributes
                if action == "list":
                    return (b"" if size else 0), None
                if action in ("set", "remove") and not os.access(
                        last, os.W_OK, dir_fd=parent, effective_ids=True,
                        follow_symlinks=follow):
                    raise OSError(errno.EACCES, "not writable in /proc")
                raise OSError(errno.EOPNOTSUPP, "no extended attributes in /proc")
            if action in ("get", "set"):
                data = ctypes.create_string_buffer(value if action == "set" else size)
                length = len(value) if action == "set" else size
                args = _XATTR_ARGS.pack(ctypes.addressof(data) if length else 0, length,
                                        flags if action == "set" else 0)
                nr = abi.NR_GETXATTRAT if action == "get" else abi.NR_SETXATTRAT
                n = host.syscall(nr, parent, last, at, name,
                                  ctypes.create_string_buffer(args, len(args)), len(args))
                if action == "set":
                    return 0, None
                return (data.raw[:n] if size else n), None
            if action == "list":
                buf = ctypes.create_string_buffer(size) if size else None
                n = host.syscall(abi.NR_LISTXATTRAT, parent, last, at, buf, size)
                return (buf.raw[:n] if buf else n), None
            if action == "remove":
                host.syscall(abi.NR_REMOVEXATTRAT, parent, last, at, name)
                return 0, None
            raise OSError(errno.EINVAL, "unknown xattr action")
        finally:
            os.close(parent)

    def op_bind(self, addr: bytes, cwd: bytes):
        """The workload's AF_UNIX socket (sent with the request) bound to the path in
        addr, the very bytes it gave: the kernel makes the socket file in the container
        tree (this process's root) with the caller's fsuid, fsgid and umask, and
        getsockname shows what the workload asked for. The kernel's own walk from here
        resolves symlinks and `..` inside this root, as the workload's walk would in its
        copy of the tree, with the caller's credentials: nothing it could not reach."""
        if self.passed is None:
            raise OSError(errno.EBADF, "no descriptor sent")
        if not isinstance(addr, bytes) or not 2 < len(addr) <= _SOCKADDR_UN_SIZE:
            raise OSError(errno.EINVAL, "bad address")
        name = addr[2:]
        if self.chroot is not None and name[:1] == b"/":
            # An absolute path starts at the caller's root: from there, as a relative
            # one (getsockname then shows it without its leading slashes).
            name = name.lstrip(b"/")
            addr = addr[:2] + (name if name[:1] not in (b"", b"\0") else b"." + name)
            # By path (fchdir is not in the allowlist), then checked to be the root
            # opened through no symlink: a directory swapped in since is refused.
            os.chdir(self.chroot[0])
            here, want = os.stat("."), os.fstat(self.chroot[1])
            if (here.st_dev, here.st_ino) != (want.st_dev, want.st_ino):
                os.chdir("/")
                raise OSError(errno.ENOENT, "the root moved")
        else:
            os.chdir(cwd)  # a relative path starts at the caller's cwd
        try:
            buf = ctypes.create_string_buffer(addr, len(addr))
            if _libc.bind(self.passed, buf, len(addr)) < 0:
                err = ctypes.get_errno()
                raise OSError(err, os.strerror(err))
        finally:
            os.chdir("/")
        return 0, None

    # -- loop ------------------------------------------------------------------
    def _dispatch(self, req: dict) -> tuple:
        op = req.pop("op", None)
        handler = getattr(self, f"op_{op}", None) if isinstance(op, str) else None
        if handler is None:
            raise OSError(errno.ENOSYS, f"unknown gofer operation {op!r}")
        creds, root = req.pop("creds", None), req.pop("root", None)
        try:
            self._set_creds(creds)
            if root is not None:
                try:
                    self._use_root(root)
                except PermissionError:  # a directory above it the caller cannot search
                    self._set_creds(None)
                    self._use_root(root)
                    self._set_creds(creds)
            try:
                return handler(**req)
            except OSError as e:
                if (e.errno != errno.EROFS or not self.proc_devs
                        or self._read_only_path(op, req)):
                    raise
                return self._procfs_refusal(op, req, e)
        finally:
            self._drop_root()

    def _read_only_path(self, op: str, req: dict) -> bool:
        """Is what the request changes under one of linux.readonlyPaths? There Linux says
        EROFS (runc mounts them read-only), also in /proc. Adding or removing a name
        changes its directory, which may be outside (rmdir of /proc/sys itself)."""
        path = req.get("new", req.get("path"))
        if not isinstance(path, bytes) or not self.readonly_paths:
            return False
        path = os.path.normpath(b"/" + path.lstrip(b"/"))
        if op in ("unlink", "mkdir", "mknod", "symlink", "link", "rename"):
            path = os.path.dirname(path)
        return any(path == p or path.startswith(p + b"/") for p in self.readonly_paths)

    # -- /proc: read-only here, refusing changes as Linux's procfs does ---------
    def _on_proc(self, path: bytes | None, parent: bool) -> bool:
        if path is None and parent:
            return False
        try:
            fd = self._parent(path)[0] if parent else self._resolve(
                path, os.O_PATH | os.O_NOFOLLOW)
        except OSError:
            return False
        try:
            return os.fstat(fd).st_dev in self.proc_devs
        finally:
            os.close(fd)

    def _exists(self, path: bytes) -> bool:
        try:
            os.close(self._resolve(path, os.O_PATH | os.O_NOFOLLOW))
            return True
        except OSError:
            return False

    def _may_set_times(self, path: bytes, times: bytes | None) -> None:
        """utimensat's own permission rule (the tree being read-only, the kernel's check
        never runs): explicit times need ownership or CAP_FOWNER; "now" also write
        permission (or CAP_DAC_OVERRIDE)."""
        fd = self._resolve(path, os.O_PATH | os.O_NOFOLLOW)
        try:
            st = os.fstat(fd)
        finally:
            os.close(fd)
        uid, gid, groups, caps = self.creds
        if uid == st.st_uid or caps >> 3 & 1:  # CAP_FOWNER
            return
        if times is not None and struct.unpack("qqqq", times)[1::2] != (_UTIME_NOW, _UTIME_NOW):
            raise OSError(errno.EPERM, "not the owner")
        bits = st.st_mode >> 6 if uid == st.st_uid else (
            st.st_mode >> 3 if gid == st.st_gid or st.st_gid in groups else st.st_mode)
        if not (bits & 2 or caps >> 1 & 1):  # write permission or CAP_DAC_OVERRIDE
            raise OSError(errno.EACCES, "no write permission")

    def _procfs_refusal(self, op: str, req: dict, err: OSError) -> tuple:
        """The errno Linux's procfs gives where this tree, being read-only, said EROFS:
        it has no new names (ENOENT, or EEXIST for one that exists), refuses mode and
        owner changes (EPERM), takes timestamps silently, and lets no one remove or write
        what is there (EACCES without CAP_DAC_OVERRIDE, else EPERM; EACCES for writes)."""
        dac_override = bool(self.creds and self.creds[3] >> 1 & 1)
        removal = errno.EPERM if dac_override else errno.EACCES
        if op in ("mkdir", "mknod", "symlink", "link", "rename"):
            new = req.get("new", req.get("path"))
            if self._on_proc(new, parent=True):
                if not self._exists(new):
                    raise OSError(errno.ENOENT, "no such entry in /proc")
                raise OSError(removal if op == "rename" else errno.EEXIST, "in /proc")
        elif op == "unlink" and self._on_proc(req.get("path"), parent=True):
            if not self._exists(req["path"]):
                raise OSError(errno.ENOENT, "no such entry in /proc")
            raise OSError(errno.EPERM if _pid_entry_depth(req["path"]) > 1 else removal,
                          "cannot remove from /proc")
        elif op in ("chmod", "chown") and self._on_proc(req.get("path"), parent=False):
            raise OSError(errno.EPERM, "not in /proc")
        elif op == "utimens" and self._on_proc(req.get("path"), parent=False):
            if _pid_entry_depth(req["path"]) == 1:
                raise OSError(errno.EPERM, "a process's entries keep their times")
            self._may_set_times(req["path"], req.get("times"))
            return 0, None  # procfs takes the times and keeps nothing
        elif op == "bind" and isinstance(req.get("addr"), bytes):
            name = req["addr"][2:].split(b"\0", 1)[0]
            path = name if name.startswith(b"/") else req.get("cwd", b"/") + b"/" + name
            if self._on_proc(path, parent=True):
                if not self._exists(path):
                    raise OSError(errno.ENOENT, "no such entry in /proc")
                raise OSError(errno.EADDRINUSE, "in /proc")
        elif op in ("open", "truncate"):
            path = req.get("path")
            if req.get("base") is None and self._on_proc(path, parent=True):
                if not self._exists(path):
                    raise OSError(errno.ENOENT, "no such entry in /proc")
                raise OSError(errno.EACCES, "not writable in /proc")
        raise err

    def serve(self) -> None:
        while True:
            req, self.passed = protocol.recv(self.sock)
            if req is None:
                return
            try:
                self._answer(req)
            finally:
                if self.passed is not None:
                    os.close(self.passed)
                    self.passed = None

    def _answer(self, req: dict) -> None:
        rid = req.pop("id", None)
        if req.get("op") == "cancel":
            self._cancel(rid)
            return  # no answer: the sentry forgot the request
        self.rid = rid if req.pop("later", False) and isinstance(rid, int) else None
        try:
            result, fd = self._dispatch(req)
        except OSError as e:
            protocol.send(self.sock, {"id": rid, "errno": e.errno or errno.EIO})
            return
        except Exception:  # noqa: BLE001 - no request may end the gofer
            # A malformed request, or arguments the handler did not expect (an
            # OverflowError from a mode or size, a RecursionError...).
            protocol.send(self.sock, {"id": rid, "errno": errno.EINVAL})
            return
        if isinstance(result, _Waiting):
            self._start_waiting(result)
            return
        try:
            protocol.send(self.sock, {"id": rid, "ok": result}, fd)
        finally:
            if fd is not None:
                os.close(fd)

    def _start_waiting(self, w: _Waiting) -> None:
        # "later" goes out before the thread can answer; the thread starts now, while
        # this thread still has the request's credentials.
        with self.lock:
            if w.rid in self.waiting:  # a reused id: refuse it rather than confuse both
                os.close(w.pfd)
                protocol.send(self.sock, {"id": w.rid, "errno": errno.EINVAL})
                return
            self.waiting[w.rid] = w
        protocol.send(self.sock, {"id": w.rid, "later": True})
        thread = threading.Thread(target=self._wait, args=(w,), daemon=True)
        try:
            thread.start()
        except RuntimeError:  # no thread to be had: the open fails as on ENOMEM
            with self.lock:
                del self.waiting[w.rid]
            os.close(w.pfd)
            protocol.send(self.sock, {"id": w.rid, "errno": errno.ENOMEM})
            return
        with self.lock:
            w.thread = thread


def _close_all_but(keep: set[int]) -> None:
    low = 0
    for fd in sorted(keep):
        if fd > low:
            os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, os.sysconf("SC_OPEN_MAX"))


def run(sock: socket.socket, tree: mounts.TreeSpec, ready_w: int) -> None:
    """Body of the gofer process (never returns). Reports readiness or a one-line error
    on ready_w, then serves until the sentry closes the socket."""
    host.prctl(abi.PR_SET_PDEATHSIG, signal.SIGKILL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # Interrupts a waiting open (no SA_RESTART: the open returns EINTR).
    signal.signal(_CANCEL_SIGNAL, lambda _sig, _frame: None)
    signal.siginterrupt(_CANCEL_SIGNAL, True)
    try:
        # Reopening the gofer's own descriptors (a FIFO's end, truncate's file) goes
        # through /proc/self/fd: of a procfs of its own PID namespace, where it is alone
        # (the sentry forks it into one), with nothing but its own process directory
        # (subset=pid), and mounted nowhere (no path in the tree leads to it).
        procfd = host.mount_proc_detached("subset=pid")
        threading.stack_size(_WAITER_STACK)
        synthetic = mounts.build_tree(tree.rootfs, tree.readonly, tree.mounts, tree.bundle,
                                      tree.masked, tree.readonly_paths, tree.devices)
        gofer = Gofer(sock, procfd, synthetic, devices.Policy(tree.devices, tree.device_rules),
                      tree.readonly_paths)
        # Nothing else of the sentry's it was forked from (the log file, its epoll, the
        # pipe it reports to the launcher on): only what serving needs.
        _close_all_but({0, 1, 2, ready_w, sock.fileno(), gofer.rootfd, procfd,
                        *gofer.synthetic.values()})
        # An empty network namespace of its own (nothing to reach over a network), and no
        # privilege to gain through exec (it never execs; the filter refuses it anyway).
        host.unshare(abi.CLONE_NEWNET)
        host.prctl(abi.PR_SET_NO_NEW_PRIVS, 1)
        # Then only the capabilities its operations need, and the syscall allowlist.
        confine.apply()
        gofer.set_capabilities(*host.capget()[1:])
    except mounts.MountError as e:
        os.write(ready_w, f"error:{e}".encode())
        os._exit(1)
    except OSError as e:
        os.write(ready_w, f"error:setting up the container filesystem: {e.strerror}".encode())
        os._exit(1)
    os.write(ready_w, ("ok:" + ",".join(synthetic)).encode())
    os.close(ready_w)
    gofer.serve()
    os._exit(0)
