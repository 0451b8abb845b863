"""ctypes wrappers for the Linux calls Python's os module lacks (constants: syscalls/
abi.py). Imported by every layer; it imports nothing of the project but abi."""
from __future__ import annotations

import ctypes
import errno
import os
import signal
import struct

from syscalls import abi

_libc = ctypes.CDLL(None, use_errno=True)
_ALL_SIGNALS = signal.valid_signals() - {signal.SIGKILL, signal.SIGSTOP}
_libc.syscall.restype = ctypes.c_long


def _check(ret: int) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return ret


def _path(p: str | bytes | None) -> bytes | None:
    if p is None:
        return None
    return os.fsencode(p)


def syscall(nr: int, *args: int | bytes | None | ctypes.Array) -> int:
    conv = []
    for a in args:
        if isinstance(a, int):
            conv.append(ctypes.c_long(a))
        else:
            conv.append(a)
    return _check(_libc.syscall(ctypes.c_long(nr), *conv))


def ioctl_value(fd: int, request: int, arg: bytes) -> int:
    """ioctl(2) with a buffer argument, returning the call's value (fcntl.ioctl returns
    the buffer instead)."""
    buf = ctypes.create_string_buffer(arg, len(arg))
    while True:
        try:
            return _check(_libc.ioctl(ctypes.c_int(fd), ctypes.c_ulong(request), buf))
        except InterruptedError:  # a signal handler ran: nothing was done, ask again
            continue


def ioctl_value_unsignalled(fd: int, request: int, arg: bytes) -> int:
    """ioctl_value with every signal blocked: for SECCOMP_IOCTL_NOTIF_ADDFD with
    ADDFD_FLAG_SEND, which marks the notification answered before the target installs
    the descriptor; interrupted by a signal handler, the kernel withdraws the install
    but not the answer, and the workload's call returns 0 with nothing installed."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _ALL_SIGNALS)
    try:
        return ioctl_value(fd, request, arg)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def unshare(flags: int) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)))


def setns(fd: int, nstype: int) -> None:
    _check(_libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)))


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0,
          data: str | None = None) -> None:
    _check(_libc.mount(_path(source), _path(target), _path(fstype),
                       ctypes.c_ulong(flags), _path(data)))


def umount2(target: str, flags: int = 0) -> None:
    _check(_libc.umount2(_path(target), ctypes.c_int(flags)))


def pivot_root(new_root: str, put_old: str) -> None:
    syscall(abi.NR_PIVOT_ROOT, _path(new_root), _path(put_old))


def mount_setattr_readonly(path: str, recursive: bool = True) -> None:
    attr = struct.pack("QQQQ", abi.MOUNT_ATTR_RDONLY, 0, 0, 0)
    syscall(abi.NR_MOUNT_SETATTR, abi.AT_FDCWD, _path(path), abi.AT_RECURSIVE if recursive else 0,
            ctypes.create_string_buffer(attr, len(attr)), len(attr))


def open_tree_clone(path: str) -> int:
    """A detached copy of the mount at path (a descriptor; reachable by no path)."""
    return syscall(abi.NR_OPEN_TREE, abi.AT_FDCWD, _path(path), abi.OPEN_TREE_CLONE | os.O_CLOEXEC)


# The gofer's hot calls (openat2 and newfstatat, once or twice per request) go through
# their own prototyped syscall() handles and reuse their buffers: converting arguments
# and building ctypes objects per call costs more than the syscall.
_openat2_call = ctypes.CDLL(None, use_errno=True).syscall
_openat2_call.restype = ctypes.c_long
_openat2_call.argtypes = (ctypes.c_long, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p,
                          ctypes.c_size_t)
_how = ctypes.create_string_buffer(24)
_fstatat_call = ctypes.CDLL(None, use_errno=True).syscall
_fstatat_call.restype = ctypes.c_long
_fstatat_call.argtypes = (ctypes.c_long, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p,
                          ctypes.c_int)
_stat_buf = ctypes.create_string_buffer(144)


def openat2(dirfd: int, path: str | bytes, flags: int, mode: int = 0,
            resolve: int = 0) -> int:
    struct.pack_into("QQQ", _how, 0, flags, mode, resolve)
    raw = _path(path)
    # With abi.RESOLVE_IN_ROOT or abi.RESOLVE_BENEATH, a `..` walk says EAGAIN when a rename or
    # mount anywhere on the machine raced with it: the kernel asks for a retry. (With
    # abi.RESOLVE_CACHED, EAGAIN is the answer itself.)
    for _ in range(100 if not resolve & abi.RESOLVE_CACHED else 1):
        ret = _openat2_call(abi.NR_OPENAT2, dirfd, raw, _how, 24)
        if ret >= 0 or ctypes.get_errno() != errno.EAGAIN:
            break
    return _check(ret)


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    return _check(_libc.prctl(ctypes.c_int(option), ctypes.c_ulong(arg2), ctypes.c_ulong(arg3),
                              ctypes.c_ulong(arg4), ctypes.c_ulong(arg5)))


def sethostname(name: str) -> None:
    b = name.encode()
    _check(_libc.sethostname(b, ctypes.c_size_t(len(b))))


def setdomainname(name: str) -> None:
    b = name.encode()
    _check(_libc.setdomainname(b, ctypes.c_size_t(len(b))))


class _IOVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


# Prototyped once, with iovecs and a buffer reused by every call: these run for nearly
# every trapped syscall, and building ctypes objects per call costs more than the call.
_vm_readv = _libc.process_vm_readv
_vm_writev = _libc.process_vm_writev
for _fn in (_vm_readv, _vm_writev):
    _fn.restype = ctypes.c_ssize_t
    _fn.argtypes = (ctypes.c_int, ctypes.POINTER(_IOVec), ctypes.c_ulong,
                    ctypes.POINTER(_IOVec), ctypes.c_ulong, ctypes.c_ulong)
_VM_BUF_SIZE = 1 << 16
_vm_buf = ctypes.create_string_buffer(_VM_BUF_SIZE)
_vm_local = _IOVec(ctypes.addressof(_vm_buf), 0)
_vm_remote = _IOVec(0, 0)


def process_vm_read(pid: int, addr: int, size: int) -> bytes:
    """Read up to size bytes of another process's memory (short on an unmapped page)."""
    if size > _VM_BUF_SIZE:
        return b"".join(process_vm_read(pid, addr + off, min(_VM_BUF_SIZE, size - off))
                        for off in range(0, size, _VM_BUF_SIZE))
    _vm_local.len = _vm_remote.len = size
    _vm_remote.base = addr
    n = _vm_readv(pid, _vm_local, 1, _vm_remote, 1, 0)
    if n < 0:
        _check(n)
    return ctypes.string_at(_vm_buf, n)  # not .raw: that copies the whole buffer


def process_vm_write(pid: int, addr: int, data: bytes) -> int:
    size = len(data)
    if size > _VM_BUF_SIZE:
        return sum(process_vm_write(pid, addr + off, data[off:off + _VM_BUF_SIZE])
                   for off in range(0, size, _VM_BUF_SIZE))
    ctypes.memmove(_vm_buf, data, size)
    _vm_local.len = _vm_remote.len = size
    _vm_remote.base = addr
    n = _vm_writev(pid, _vm_local, 1, _vm_remote, 1, 0)
    return _check(n)


def fstatat_raw(dirfd: int, path: str | bytes, flags: int) -> bytes:
    """The kernel's struct stat (x86_64, 144 bytes) exactly as newfstatat fills it."""
    _check(_fstatat_call(abi.NR_NEWFSTATAT, dirfd, _path(path), _stat_buf, flags))
    return _stat_buf.raw


def statx_raw(dirfd: int, path: str | bytes, flags: int, mask: int) -> bytes:
    """The kernel's struct statx (256 bytes) exactly as statx fills it."""
    buf = ctypes.create_string_buffer(256)
    syscall(abi.NR_STATX, dirfd, _path(path), flags, mask, buf)
    return buf.raw


def fstatfs_raw(fd: int) -> bytes:
    buf = ctypes.create_string_buffer(120)
    syscall(abi.NR_FSTATFS, fd, buf)
    return buf.raw


def fchmodat2(dirfd: int, path: str | bytes, mode: int, flags: int) -> None:
    syscall(abi.NR_FCHMODAT2, dirfd, _path(path), mode, flags)


def utimensat(dirfd: int, path: str | bytes, times: bytes | None, flags: int) -> None:
    tbuf = ctypes.create_string_buffer(times, len(times)) if times is not None else None
    syscall(abi.NR_UTIMENSAT, dirfd, _path(path), tbuf, flags)


def renameat2(olddirfd: int, old: str | bytes, newdirfd: int, new: str | bytes,
              flags: int) -> None:
    syscall(abi.NR_RENAMEAT2, olddirfd, _path(old), newdirfd, _path(new), flags)


def faccess_fd(fd: int, mode: int, effective: bool) -> None:
    """access(2) on what fd names (an O_PATH descriptor will do)."""
    flags = abi.AT_EMPTY_PATH | (abi.AT_EACCESS if effective else 0)
    syscall(abi.NR_FACCESSAT2, fd, b"", mode, flags)


def pidfd_getfd(pidfd: int, fd: int) -> int:
    """A copy of another process's descriptor fd: the same open file (close-on-exec)."""
    return syscall(abi.NR_PIDFD_GETFD, pidfd, fd, 0)


def sched_getcpu() -> int:
    return _check(_libc.sched_getcpu())


_CAP_VERSION_3 = 0x20080522


def capget() -> tuple[int, int, int]:
    """(effective, permitted, inheritable) capability masks of the calling thread."""
    header = ctypes.create_string_buffer(struct.pack("Ii", _CAP_VERSION_3, 0), 8)
    data = ctypes.create_string_buffer(24)
    syscall(abi.NR_CAPGET, header, data)
    e0, p0, i0, e1, p1, i1 = struct.unpack("6I", data.raw)
    return e0 | e1 << 32, p0 | p1 << 32, i0 | i1 << 32


def capset(effective: int, permitted: int, inheritable: int) -> None:
    header = struct.pack("Ii", _CAP_VERSION_3, 0)
    data = struct.pack("6I", effective & 0xFFFFFFFF, permitted & 0xFFFFFFFF,
                       inheritable & 0xFFFFFFFF, effective >> 32, permitted >> 32,
                       inheritable >> 32)
    syscall(abi.NR_CAPSET, ctypes.create_string_buffer(header, 8),
            ctypes.create_string_buffer(data, 24))


def drop_capabilities(keep: int) -> None:
    """Keep only the capabilities in mask keep: the bounding set (this thread's, so call
    it while the process has one thread), then permitted and effective; no inheritable or
    ambient ones. Needs abi.CAP_SETPCAP until the bounding set is done."""
    cap = 0
    while True:
        try:
            prctl(abi.PR_CAPBSET_READ, cap)
        except OSError:
            break  # past the kernel's last capability
        if not keep >> cap & 1 and cap != abi.CAP_SETPCAP:
            prctl(abi.PR_CAPBSET_DROP, cap)
        cap += 1
    if not keep >> abi.CAP_SETPCAP & 1:
        prctl(abi.PR_CAPBSET_DROP, abi.CAP_SETPCAP)  # last: the drops above needed it
    prctl(abi.PR_CAP_AMBIENT, abi.PR_CAP_AMBIENT_CLEAR_ALL)
    capset(keep, keep, 0)


def mount_proc_detached(options: str) -> int:
    """A procfs of the caller's PID namespace, mounted nowhere: a descriptor of its root
    (fsopen/fsmount), reachable by no path."""
    fs = syscall(abi.NR_FSOPEN, b"proc", abi.FSOPEN_CLOEXEC)
    try:
        for opt in filter(None, options.split(",")):
            key, _, value = opt.partition("=")
            syscall(abi.NR_FSCONFIG, fs, abi.FSCONFIG_SET_STRING, key.encode(), value.encode(), 0)
        syscall(abi.NR_FSCONFIG, fs, abi.FSCONFIG_CMD_CREATE, None, None, 0)
        return syscall(abi.NR_FSMOUNT, fs, abi.FSMOUNT_CLOEXEC,
                       abi.MOUNT_ATTR_NOSUID | abi.MOUNT_ATTR_NODEV | abi.MOUNT_ATTR_NOEXEC)
    finally:
        os.close(fs)
