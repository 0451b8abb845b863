"""The seccomp platform: a libseccomp filter generated from the syscall table sends
EMULATE syscalls to the sentry through a seccomp user-notification descriptor.

PASSTHROUGH syscalls never leave the kernel; DENY ones get their errno from the filter.
Answers go back with SECCOMP_IOCTL_NOTIF_SEND, descriptors with NOTIF_ADDFD (+SEND, so
the install and the answer are one atomic step).
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import logging
import os
import struct
from collections.abc import Collection

import pyseccomp

from gofer import linux
from gofer.client import GoferGone
from syscalls.argtypes import cast
from syscalls.context import SyscallContext, TargetGone
from syscalls.table import HANDLER_ARG_TYPES, HANDLER_CHECKS, HANDLERS, TABLE, Kind

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


def build_filter(no_new_privs: bool, bounding: Collection[int]) -> pyseccomp.SyscallFilter:
    """The filter for the workload, generated from the syscall table, for a process whose
    bounding set is `bounding` (capability numbers): a call gated on a capability the set
    lacks fails with EPERM. Argument rules are in arg_rules_program(), stacked on this."""
    f = pyseccomp.SyscallFilter(pyseccomp.ERRNO(errno.ENOSYS))
    f.set_attr(pyseccomp.Attr.CTL_NNP, 1 if no_new_privs else 0)
    # x32 and i386 (int 0x80) entry points: refused like a kernel built without them,
    # never run unfiltered.
    f.set_attr(pyseccomp.Attr.ACT_BADARCH, pyseccomp.ERRNO(errno.ENOSYS))
    for sc in TABLE.values():
        if sc.cap_gate is not None and sc.cap_gate.cap not in bounding:
            f.add_rule(pyseccomp.ERRNO(errno.EPERM), sc.nr)
        elif sc.kind is Kind.EMULATE:
            f.add_rule(pyseccomp.NOTIFY, sc.nr)
        elif sc.kind is Kind.DENY:
            if sc.errno != errno.ENOSYS:  # ENOSYS is the default action already
                f.add_rule(pyseccomp.ERRNO(sc.errno), sc.nr)
        else:
            f.add_rule(pyseccomp.ALLOW, sc.nr)
    return f


# Classic BPF for the argument rules. libseccomp cannot say "refuse unless the argument
# is one of these" under a default other than that refusal (an unconditional rule
# overrides conditional ones on the same call), so the rules are a second, small filter:
# the kernel runs both and the strongest action wins (ERRNO over USER_NOTIF over ALLOW).
_LD_ABS, _AND_K, _JA, _JEQ_K, _JSET_K, _RET_K = 0x20, 0x54, 0x05, 0x15, 0x45, 0x06
_AUDIT_ARCH_X86_64 = 0xC000003E
RET_ALLOW, RET_ERRNO = 0x7FFF0000, 0x00050000
_SECCOMP_SET_MODE_FILTER = 1
_SYS_SECCOMP = 317


def _arg_offsets(arg: int) -> tuple[int, int]:
    """Offsets of an argument's low and high words in struct seccomp_data."""
    return 16 + 8 * arg, 16 + 8 * arg + 4


def _compile_rules(rules: tuple, out: list, new_label) -> None:
    for rule in rules:
        lo_off, hi_off = _arg_offsets(rule.arg)
        lo_mask, hi_mask = rule.mask & 0xFFFFFFFF, rule.mask >> 32
        deny, done = ("ret", RET_ERRNO | rule.errno), new_label()
        if rule.when is not None:  # the rule holds only where the other argument matches
            w_arg, w_mask, w_value = rule.when
            w_lo, w_hi = _arg_offsets(w_arg)
            for off, m, want in ((w_hi, w_mask >> 32, w_value >> 32),
                                 (w_lo, w_mask & 0xFFFFFFFF, w_value & 0xFFFFFFFF)):
                if not m:
                    continue
                out.append(("ld", off))
                if m != 0xFFFFFFFF:
                    out.append(("and", m))
                out.append(("jeq", want & m, None, done))
        if rule.op == "any_bit":
            for off, m in ((lo_off, lo_mask), (hi_off, hi_mask)):
                if m:
                    out += [("ld", off), ("jset", m, deny, None)]
        else:
            match = deny if rule.op == "in" else done  # where a listed value goes
            for v in rule.values:
                skip = new_label()
                for off, m, want, last in ((hi_off, hi_mask, v >> 32, False),
                                           (lo_off, lo_mask, v & 0xFFFFFFFF, True)):
                    if not m:
                        continue
                    out.append(("ld", off))
                    if m != 0xFFFFFFFF:
                        out.append(("and", m))
                    out.append(("jeq", want & m, match if last else None, skip))
                out.append(("label", skip))
            if rule.op == "not_in":
                out.append(deny)
        out.append(("label", done))
    out.append(("ret", RET_ALLOW))


def arg_rules_program() -> list[tuple[int, int, int, int]]:
    """The argument rules of the table as classic BPF (code, jt, jf, k): a listed call
    whose arguments match a rule fails with its errno; everything else is ALLOW (the
    main filter decides those)."""
    counter = iter(range(1 << 30))

    def new_label() -> str:
        return f"L{next(counter)}"

    ruled = [sc for sc in TABLE.values() if sc.arg_rules]
    out: list = [("ld", 4), ("jeq", _AUDIT_ARCH_X86_64, None, "allow"), ("ld", 0)]
    out += [("jeq", sc.nr, f"nr{sc.nr}", None) for sc in ruled]
    out += [("label", "allow"), ("ret", RET_ALLOW)]
    for sc in ruled:
        out.append(("label", f"nr{sc.nr}"))
        _compile_rules(sc.arg_rules, out, new_label)
    # A jump to a return: jump to a shared copy at the end instead.
    rets = sorted({t[1] for ins in out if ins[0] in ("jeq", "jset")
                   for t in ins[2:] if isinstance(t, tuple)})
    for k in rets:
        out += [("label", f"ret{k:x}"), ("ret", k)]
    labels, pc = {}, 0
    for ins in out:
        if ins[0] == "label":
            labels[ins[1]] = pc
        else:
            pc += 1

    def target(t, pc: int) -> int:
        if t is None:
            return 0
        dest = labels[f"ret{t[1]:x}" if isinstance(t, tuple) else t]
        off = dest - pc - 1
        assert 0 <= off <= 255, "argument rules too long for a conditional jump"
        return off

    prog, pc = [], 0
    for ins in out:
        op = ins[0]
        if op == "label":
            continue
        if op == "ld":
            prog.append((_LD_ABS, 0, 0, ins[1]))
        elif op == "and":
            prog.append((_AND_K, 0, 0, ins[1]))
        elif op == "ret":
            prog.append((_RET_K, 0, 0, ins[1]))
        else:
            code = _JEQ_K if op == "jeq" else _JSET_K
            prog.append((code, target(ins[2], pc), target(ins[3], pc), ins[1]))
        pc += 1
    return prog


# Calls that ask ptrace access to another process, refused where Landlock cannot keep
# the workload away from an exec'd process's set-up (sentry/workload.py).
PTRACE_ACCESS_CALLS = ("ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd",
                       "kcmp", "process_madvise")


def no_ptrace_program() -> list[tuple[int, int, int, int]]:
    """Classic BPF: EPERM for PTRACE_ACCESS_CALLS (x86_64), ALLOW for everything else."""
    nrs = sorted(sc.nr for sc in TABLE.values() if sc.name in PTRACE_ACCESS_CALLS)
    prog = [(_LD_ABS, 0, 0, 4), (_JEQ_K, 0, len(nrs) + 1, _AUDIT_ARCH_X86_64),
            (_LD_ABS, 0, 0, 0)]
    for i, nr in enumerate(nrs):
        prog.append((_JEQ_K, len(nrs) - i, 0, nr))
    prog += [(_RET_K, 0, 0, RET_ALLOW), (_RET_K, 0, 0, RET_ERRNO | errno.EPERM)]
    return prog


def load_no_ptrace_program() -> None:
    """Stack no_ptrace_program() on the calling process (it must be root or have set
    no_new_privs)."""
    _load_program(no_ptrace_program())


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8),
                ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


def _load_program(prog: list[tuple[int, int, int, int]]) -> None:
    insns = (_SockFilter * len(prog))(*(_SockFilter(*i) for i in prog))
    fprog = _SockFprog(len(prog), insns)
    linux.syscall(_SYS_SECCOMP, _SECCOMP_SET_MODE_FILTER, 0, ctypes.byref(fprog))


_FILTER_FLAG_NEW_LISTENER = 1 << 3
# Linux 5.19+: once the sentry has received a notification, the thread waits for the
# answer killable, not interruptible. A caught signal (the gofer's own change firing a
# dnotify SIGIO, a timer, SIGCHLD) is then delivered after the answer, as Linux delivers
# it after a chmod or rename; without it the wait ends, the call returns EINTR (or is
# restarted) although the sentry completed it. Calls that do wait (a FIFO open) are
# interrupted by the sentry itself (SyscallContext.interrupt).
_FILTER_FLAG_WAIT_KILLABLE_RECV = 1 << 5


def _export_bpf(f: pyseccomp.SyscallFilter) -> bytes:
    """The filter's classic BPF as libseccomp generates it (2.5 cannot set the flag)."""
    fd = os.memfd_create("seccomp-bpf", os.MFD_CLOEXEC)
    try:
        rc = pyseccomp._libseccomp.seccomp_export_bpf(f._filter, fd)
        if rc < 0:
            raise OSError(-rc, "seccomp_export_bpf failed")
        return os.pread(fd, os.fstat(fd).st_size, 0)
    finally:
        os.close(fd)


def _load_listener(bpf: bytes, killable: bool) -> int:
    """Load a BPF program that returns USER_NOTIF; its notification descriptor."""
    n = len(bpf) // ctypes.sizeof(_SockFilter)
    if n == 0 or n * ctypes.sizeof(_SockFilter) != len(bpf):
        raise OSError(errno.EINVAL, "malformed BPF from libseccomp")
    insns = (_SockFilter * n).from_buffer_copy(bpf)
    fprog = _SockFprog(n, insns)
    if killable:
        try:
            return linux.syscall(_SYS_SECCOMP, _SECCOMP_SET_MODE_FILTER,
                                 _FILTER_FLAG_NEW_LISTENER | _FILTER_FLAG_WAIT_KILLABLE_RECV,
                                 ctypes.byref(fprog))
        except OSError as e:
            if e.errno != errno.EINVAL:
                raise
    # Before 5.19: interruptible waits (emulated calls may then end with EINTR).
    return linux.syscall(_SYS_SECCOMP, _SECCOMP_SET_MODE_FILTER, _FILTER_FLAG_NEW_LISTENER,
                         ctypes.byref(fprog))


def install_filter(no_new_privs: bool, bounding: Collection[int], killable: bool = True) -> int:
    """Load the filters into the calling process; the notification descriptor. killable:
    received notifications wait killable (WAIT_KILLABLE_RECV), unless pause can freeze
    the sentry (cgroup v2): a thread whose call a frozen sentry holds could not freeze."""
    f = build_filter(no_new_privs, bounding)
    bpf = _export_bpf(f)
    if no_new_privs:  # what seccomp_load does for CTL_NNP
        linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)
    # Without no_new_privs the caller is still root (CAP_SYS_ADMIN), which loading needs.
    fd = _load_listener(bpf, killable)
    _load_program(arg_rules_program())
    return fd


class SeccompContext(SyscallContext):
    __slots__ = ("notify_fd", "id", "pid", "nr", "args", "kernel", "answered", "_status")

    def __init__(self, notify_fd: int, kernel: object, raw: bytes) -> None:
        nid, pid, _flags, nr, _arch, _ip, *args = _NOTIF.unpack(raw)
        self.notify_fd, self.kernel = notify_fd, kernel
        self.id, self.pid, self.nr, self.args = nid, pid, nr, tuple(args)
        self.answered = False
        self._status = None

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
        self.validate()
        if len(data) != size:  # the range runs into an unmapped page, as the kernel's
            raise OSError(errno.EFAULT, "bad address")  # copy_from_user would
        return data

    def write(self, addr: int, data: bytes) -> None:
        self.validate()
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
            # Handlers see int and umode_t arguments as the kernel's C code does.
            ctx.args = cast(HANDLER_ARG_TYPES[ctx.nr], ctx.args)
            check = HANDLER_CHECKS.get(ctx.nr)
            if check is not None:
                check(ctx)  # Linux's argument checks come before any path or permission
            if not ctx.answered:
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
