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
import select
import struct
from collections.abc import Callable, Collection

import pyseccomp

from sentry.platform import Platform, Watch
from sentry.platform.dispatch import Tracer, dispatch
from syscalls import abi, host
from syscalls.context import SyscallContext
from syscalls.table import TABLE, Kind

log = logging.getLogger("runsc-py.sentry")




# The call the ptrace platform turns a trapped call into to hand the workload a
# descriptor (tuxcall: ENOSYS on Linux x86_64; see sentry/platform/ptrace.py).
TRACE_MARKER_NR = 184
# And the one it turns a waiting call into when a signal must interrupt it: skipped with
# abi.ERESTARTSYS by the filter (its first argument the cookie), so the kernel applies
# Linux's restart rules to it; the tracer puts the call's own number back at the
# signal's stop (afs_syscall: ENOSYS on Linux).
TRACE_RESTART_NR, TRACE_RESTART_COOKIE = 183, 0x5245535441525453


def build_filter(no_new_privs: bool, bounding: Collection[int],
                 trace_marker: int | None = None) -> pyseccomp.SyscallFilter:
    """The filter for the workload, generated from the syscall table, for a process whose
    bounding set is `bounding` (capability numbers): a call gated on a capability the set
    lacks fails with EPERM. Argument rules are in arg_rules_program(), stacked on this.

    With trace_marker (the ptrace platform, sentry/platform/ptrace.py), every call the
    table lets through, emulated or passthrough, stops in the tracer
    (SECCOMP_RET_TRACE), and only the marker number goes to the notification listener."""
    f = pyseccomp.SyscallFilter(pyseccomp.ERRNO(errno.ENOSYS))
    trace = trace_marker is not None
    emulate = pyseccomp.TRACE(0) if trace else pyseccomp.NOTIFY
    allow = pyseccomp.TRACE(0) if trace else pyseccomp.ALLOW
    f.set_attr(pyseccomp.Attr.CTL_NNP, 1 if no_new_privs else 0)
    # x32 and i386 (int 0x80) entry points: refused like a kernel built without them,
    # never run unfiltered.
    f.set_attr(pyseccomp.Attr.ACT_BADARCH, pyseccomp.ERRNO(errno.ENOSYS))
    for sc in TABLE.values():
        if sc.nr == trace_marker:
            f.add_rule(pyseccomp.NOTIFY, sc.nr)
        elif trace and sc.nr == TRACE_RESTART_NR:
            f.add_rule(pyseccomp.ERRNO(abi.ERESTARTSYS), sc.nr,
                       pyseccomp.Arg(0, pyseccomp.EQ, TRACE_RESTART_COOKIE))
        elif sc.cap_gate is not None and sc.cap_gate.cap not in bounding:
            f.add_rule(pyseccomp.ERRNO(errno.EPERM), sc.nr)
        elif sc.kind is Kind.EMULATE:
            f.add_rule(emulate, sc.nr)
        elif sc.kind is Kind.DENY:
            if sc.errno != errno.ENOSYS:  # ENOSYS is the default action already
                f.add_rule(pyseccomp.ERRNO(sc.errno), sc.nr)
        else:
            f.add_rule(allow, sc.nr)
    return f


# Classic BPF for the argument rules. libseccomp cannot say "refuse unless the argument
# is one of these" under a default other than that refusal (an unconditional rule
# overrides conditional ones on the same call), so the rules are a second, small filter:
# the kernel runs both and the strongest action wins (ERRNO over USER_NOTIF over ALLOW).
_LD_ABS, _AND_K, _JA, _JEQ_K, _JSET_K, _RET_K = 0x20, 0x54, 0x05, 0x15, 0x45, 0x06
_AUDIT_ARCH_X86_64 = 0xC000003E
RET_ALLOW, RET_ERRNO = 0x7FFF0000, 0x00050000


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
    host.syscall(abi.NR_SECCOMP, abi.SECCOMP_SET_MODE_FILTER, 0, ctypes.byref(fprog))


# Linux 5.19+: once the sentry has received a notification, the thread waits for the
# answer killable, not interruptible. A caught signal (the gofer's own change firing a
# dnotify SIGIO, a timer, SIGCHLD) is then delivered after the answer, as Linux delivers
# it after a chmod or rename; without it the wait ends, the call returns EINTR (or is
# restarted) although the sentry completed it. Calls that do wait (a FIFO open) are
# interrupted by the sentry itself (SyscallContext.interrupt).


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
            return host.syscall(abi.NR_SECCOMP, abi.SECCOMP_SET_MODE_FILTER,
                                 abi.SECCOMP_FILTER_FLAG_NEW_LISTENER
                                 | abi.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
                                 ctypes.byref(fprog))
        except OSError as e:
            if e.errno != errno.EINVAL:
                raise
    # Before 5.19: interruptible waits (emulated calls may then end with EINTR).
    return host.syscall(abi.NR_SECCOMP, abi.SECCOMP_SET_MODE_FILTER,
                        abi.SECCOMP_FILTER_FLAG_NEW_LISTENER,
                         ctypes.byref(fprog))


def install_filter(no_new_privs: bool, bounding: Collection[int], killable: bool = True,
                   trace_marker: int | None = None) -> int:
    """Load the filters into the calling process; the notification descriptor. killable:
    received notifications wait killable (WAIT_KILLABLE_RECV), unless pause can freeze
    the sentry (cgroup v2): a thread whose call a frozen sentry holds could not freeze.
    trace_marker: the ptrace platform's filter (build_filter)."""
    f = build_filter(no_new_privs, bounding, trace_marker)
    bpf = _export_bpf(f)
    if no_new_privs:  # what seccomp_load does for CTL_NNP
        host.prctl(abi.PR_SET_NO_NEW_PRIVS, 1)
    # Without no_new_privs the caller is still root (CAP_SYS_ADMIN), which loading needs.
    fd = _load_listener(bpf, killable)
    _load_program(arg_rules_program())
    return fd


def receive(notify_fd: int, buf: bytearray) -> bool:
    """SECCOMP_IOCTL_NOTIF_RECV into buf; False if the notification went meanwhile (its
    thread was interrupted or died) or a signal came first."""
    buf[:] = bytes(abi.SECCOMP_NOTIF.size)
    try:
        fcntl.ioctl(notify_fd, abi.SECCOMP_IOCTL_NOTIF_RECV, buf, True)
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.EINTR):
            return False
        raise
    return True


class SeccompContext(SyscallContext):
    __slots__ = ("notify_fd", "id", "pid", "nr", "args", "kernel", "answered", "_status")

    def __init__(self, notify_fd: int, kernel: object, raw: bytes) -> None:
        nid, pid, _flags, nr, _arch, _ip, *args = abi.SECCOMP_NOTIF.unpack(raw)
        self.notify_fd, self.kernel = notify_fd, kernel
        self.id, self.pid, self.nr, self.args = nid, pid, nr, tuple(args)
        self.answered = False
        self._status = None

    def valid(self) -> bool:
        try:
            fcntl.ioctl(self.notify_fd, abi.SECCOMP_IOCTL_NOTIF_ID_VALID, struct.pack("Q", self.id))
        except OSError:
            return False
        return True

    def _send(self, val: int, err: int, flags: int) -> None:
        self.answered = True
        self.record(None if flags else err or val)
        try:
            fcntl.ioctl(self.notify_fd, abi.SECCOMP_IOCTL_NOTIF_SEND,
                        abi.SECCOMP_NOTIF_RESP.pack(self.id, val, err, flags))
        except OSError as e:
            if e.errno != errno.ENOENT:  # ENOENT: the thread is gone or was interrupted
                raise

    def reply(self, value: int) -> None:
        self._send(value, 0, 0)

    def fail(self, err: int) -> None:
        self._send(0, -err, 0)

    def passthrough(self) -> None:
        self._send(0, 0, abi.SECCOMP_USER_NOTIF_FLAG_CONTINUE)

    def install_fd(self, fd: int, cloexec: bool) -> None:
        req = abi.SECCOMP_NOTIF_ADDFD.pack(self.id, abi.SECCOMP_ADDFD_FLAG_SEND, fd, 0,
                                           os.O_CLOEXEC if cloexec else 0)
        try:
            # With abi.SECCOMP_ADDFD_FLAG_SEND the install is the answer: the number it gives.
            self.record(host.ioctl_value_unsignalled(self.notify_fd,
                                                     abi.SECCOMP_IOCTL_NOTIF_ADDFD, req))
        except OSError as e:
            if e.errno not in (errno.ENOENT, errno.EINPROGRESS):
                raise  # not answered: the caller fails the syscall with this errno
        self.answered = True


class SeccompPlatform(Platform):
    """The notification descriptors of a sandbox's processes (one filter each): each
    notification is received and dispatched as it comes."""

    name = "seccomp"

    def __init__(self, kernel: object, watch: Watch, unwatch: Callable[[int], None],
                 tracer: Tracer | None = None) -> None:
        super().__init__(kernel, watch, unwatch, tracer)
        self._buf = bytearray(abi.SECCOMP_NOTIF.size)

    def add_process(self, notify_fd: int) -> None:
        try:
            # Linux 6.6+ (made for gVisor): the answer wakes the workload on this CPU.
            # The flags are the ioctl's argument itself, not a pointer to them.
            fcntl.ioctl(notify_fd, abi.SECCOMP_IOCTL_NOTIF_SET_FLAGS,
                        abi.SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP)
        except OSError as e:
            log.debug("seccomp notification sync wake-up unavailable: %s", e)

        def on_event(events: int) -> None:
            if events & select.EPOLLIN:
                self.handle_one(notify_fd)
            elif events & (select.EPOLLHUP | select.EPOLLERR):
                # Every process under this filter has exited: their waits in the gofer
                # end before the descriptor (and the ids it qualifies) goes.
                self.kernel.gofer.check_waiting()
                self.unwatch(notify_fd)
                os.close(notify_fd)

        self.watch(notify_fd, on_event)

    def handle_one(self, notify_fd: int) -> None:
        buf = self._buf
        if not receive(notify_fd, buf):
            return
        dispatch(SeccompContext(notify_fd, self.kernel, bytes(buf)), self.tracer)
