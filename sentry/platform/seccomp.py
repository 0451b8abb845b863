"""The seccomp platform: a libseccomp filter generated from the syscall table sends
EMULATE syscalls to the sentry through a seccomp user-notification descriptor.

PASSTHROUGH syscalls never leave the kernel; DENY ones get their errno from the filter.
Answers go back with SECCOMP_IOCTL_NOTIF_SEND, descriptors with NOTIF_ADDFD (+SEND, so
the install and the answer are one atomic step).
"""
from __future__ import annotations

import errno
import fcntl
import logging
import os
import struct

import pyseccomp

from gofer import linux
from gofer.client import GoferGone
from syscalls.context import SyscallContext, TargetGone
from syscalls.table import HANDLERS, TABLE, Kind

log = logging.getLogger("runsc-py.sentry")


def _iowr(nr: int, size: int) -> int:
    return (3 << 30) | (size << 16) | (ord("!") << 8) | nr


def _iow(nr: int, size: int) -> int:
    return (1 << 30) | (size << 16) | (ord("!") << 8) | nr


_NOTIF = struct.Struct("QIIiIQ6Q")      # struct seccomp_notif
_RESP = struct.Struct("QqiI")           # struct seccomp_notif_resp
_ADDFD = struct.Struct("QIIII")         # struct seccomp_notif_addfd
NOTIF_RECV = _iowr(0, _NOTIF.size)
NOTIF_SEND = _iowr(1, _RESP.size)
NOTIF_ID_VALID = _iow(2, 8)
NOTIF_ADDFD = _iow(3, _ADDFD.size)
NOTIF_SET_FLAGS = _iow(4, 8)
USER_NOTIF_FD_SYNC_WAKE_UP = 1
RESP_FLAG_CONTINUE = 1
ADDFD_FLAG_SEND = 2


def build_filter(no_new_privs: bool) -> pyseccomp.SyscallFilter:
    """The filter for the workload, generated from the syscall table."""
    f = pyseccomp.SyscallFilter(pyseccomp.ERRNO(errno.ENOSYS))
    f.set_attr(pyseccomp.Attr.CTL_NNP, 1 if no_new_privs else 0)
    # x32 and i386 (int 0x80) entry points: refused like a kernel built without them,
    # never run unfiltered.
    f.set_attr(pyseccomp.Attr.ACT_BADARCH, pyseccomp.ERRNO(errno.ENOSYS))
    for sc in TABLE.values():
        if sc.kind is Kind.EMULATE:
            f.add_rule(pyseccomp.NOTIFY, sc.nr)
        elif sc.kind is Kind.DENY:
            if sc.errno != errno.ENOSYS:  # ENOSYS is the default action already
                f.add_rule(pyseccomp.ERRNO(sc.errno), sc.nr)
        elif not sc.arg_rules:
            f.add_rule(pyseccomp.ALLOW, sc.nr)
        else:
            for rule in sc.arg_rules:
                if rule.any_bit:
                    f.add_rule(pyseccomp.ALLOW, sc.nr,
                               pyseccomp.Arg(rule.arg, pyseccomp.MASKED_EQ, rule.mask, 0))
                    for bit in range(64):
                        if rule.mask >> bit & 1:
                            f.add_rule(pyseccomp.ERRNO(rule.errno), sc.nr, pyseccomp.Arg(
                                rule.arg, pyseccomp.MASKED_EQ, 1 << bit, 1 << bit))
                else:
                    # libseccomp has no masked "not equal": allow when any masked bit
                    # differs from the refused value, one rule per bit.
                    for bit in range(64):
                        if rule.mask >> bit & 1:
                            want = (~rule.value) & (1 << bit)
                            f.add_rule(pyseccomp.ALLOW, sc.nr, pyseccomp.Arg(
                                rule.arg, pyseccomp.MASKED_EQ, 1 << bit, want))
                    f.add_rule(pyseccomp.ERRNO(rule.errno), sc.nr, pyseccomp.Arg(
                        rule.arg, pyseccomp.MASKED_EQ, rule.mask, rule.value))
    return f


def install_filter(no_new_privs: bool) -> int:
    """Load the filter into the calling process; its notification descriptor."""
    f = build_filter(no_new_privs)
    f.load()
    fd = pyseccomp._libseccomp.seccomp_notify_fd(f._filter)
    if fd < 0:
        raise OSError(-fd, "seccomp notification descriptor unavailable")
    return fd


class SeccompContext(SyscallContext):
    __slots__ = ("notify_fd", "id", "pid", "nr", "args", "kernel", "answered", "_status")

    def __init__(self, notify_fd: int, kernel: object, raw: bytes) -> None:
        nid, pid, _flags, nr, _arch, _ip, *args = _NOTIF.unpack(raw)
        self.notify_fd, self.kernel = notify_fd, kernel
        self.id, self.pid, self.nr, self.args = nid, pid, nr, tuple(args)
        self.answered = False
        self._status = None

    def _valid(self) -> None:
        try:
            fcntl.ioctl(self.notify_fd, NOTIF_ID_VALID, struct.pack("Q", self.id))
        except OSError:
            raise TargetGone() from None

    def valid(self) -> bool:
        try:
            fcntl.ioctl(self.notify_fd, NOTIF_ID_VALID, struct.pack("Q", self.id))
        except OSError:
            return False
        return True

    def read(self, addr: int, size: int) -> bytes:
        try:
            data = linux.process_vm_read(self.pid, addr, size)
        except OSError as e:
            if e.errno == errno.ESRCH:
                raise TargetGone() from None
            raise OSError(errno.EFAULT, "bad address") from None
        # The pid could have been reused if the thread died: check after reading.
        self._valid()
        return data

    def write(self, addr: int, data: bytes) -> None:
        self._valid()
        try:
            n = linux.process_vm_write(self.pid, addr, data)
        except OSError as e:
            if e.errno == errno.ESRCH:
                raise TargetGone() from None
            raise OSError(errno.EFAULT, "bad address") from None
        if n != len(data):
            raise OSError(errno.EFAULT, "bad address")

    def _send(self, val: int, err: int, flags: int) -> None:
        self.answered = True
        try:
            fcntl.ioctl(self.notify_fd, NOTIF_SEND, _RESP.pack(self.id, val, err, flags))
        except OSError as e:
            if e.errno != errno.ENOENT:  # ENOENT: the thread is gone or was interrupted
                raise

    def reply(self, value: int) -> None:
        self._send(value, 0, 0)

    def fail(self, err: int) -> None:
        self._send(0, -err, 0)

    def passthrough(self) -> None:
        self._send(0, 0, RESP_FLAG_CONTINUE)

    def install_fd(self, fd: int, cloexec: bool) -> None:
        req = _ADDFD.pack(self.id, ADDFD_FLAG_SEND, fd, 0, os.O_CLOEXEC if cloexec else 0)
        try:
            fcntl.ioctl(self.notify_fd, NOTIF_ADDFD, req)
        except OSError as e:
            if e.errno not in (errno.ENOENT, errno.EINPROGRESS):
                raise  # not answered: the caller fails the syscall with this errno
        self.answered = True


class SeccompPlatform:
    """Receives one notification at a time and runs its handler."""

    def __init__(self, notify_fd: int, kernel: object) -> None:
        self.notify_fd = notify_fd
        self.kernel = kernel
        try:
            # Linux 6.6+ (made for gVisor): the answer wakes the workload on this CPU.
            # The flags are the ioctl's argument itself, not a pointer to them.
            fcntl.ioctl(notify_fd, NOTIF_SET_FLAGS, USER_NOTIF_FD_SYNC_WAKE_UP)
        except OSError as e:
            log.debug("seccomp notification sync wake-up unavailable: %s", e)
        self._buf = bytearray(_NOTIF.size)

    def fileno(self) -> int:
        return self.notify_fd

    def handle_one(self) -> None:
        buf = self._buf
        buf[:] = bytes(_NOTIF.size)
        try:
            fcntl.ioctl(self.notify_fd, NOTIF_RECV, buf, True)
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.EINTR):
                return
            raise
        ctx = SeccompContext(self.notify_fd, self.kernel, bytes(buf))
        try:
            HANDLERS[ctx.nr](ctx)
        except TargetGone:
            return
        except OSError as e:
            if not ctx.answered:
                ctx.fail(e.errno or errno.EIO)
            return
        except GoferGone:
            raise
        except Exception:  # a sentry bug must not take the sandbox down with it
            log.exception("handler for syscall %d failed", ctx.nr)
            if not ctx.answered:
                ctx.fail(errno.EIO)
            return
        if not ctx.answered:
            log.error("handler for syscall %d gave no answer", ctx.nr)
            ctx.fail(errno.ENOSYS)
