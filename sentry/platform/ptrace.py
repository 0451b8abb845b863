"""The ptrace platform: every syscall of the workload stops in the sentry.

The workload's filter (built from the same table as the seccomp platform's) returns
SECCOMP_RET_TRACE for every call it lets through, emulated or passthrough; denied calls
keep their errno in the filter. The sentry is the tracer of every workload thread
(abi.PTRACE_SEIZE with TRACESECCOMP, TRACECLONE/FORK/VFORK, TRACEEXEC, EXITKILL): at each
seccomp stop it reads the registers and hands a PtraceContext to dispatch(), like any
platform. Answers are register writes: a value or an error skips the call (orig_rax -1,
rax the result); passthrough resumes it unchanged, and the kernel runs it after
rechecking the filter against the registers as they are then (Linux 4.8+), so a tracer
in the sandbox cannot steer a call past the filter either.

Descriptors: the kernel installs no descriptor into a tracee on a tracer's behalf. The
trapped call is turned into MARKER_NR (tuxcall, which Linux x86_64 does not implement);
the filter sends that number, and only it, to the sentry's seccomp listener, and the
sentry answers that notification with SECCOMP_IOCTL_NOTIF_ADDFD + SEND: the descriptor
is installed and is the call's result in one step. A marker the workload makes itself
finds no descriptor waiting for it and fails with ENOSYS, as tuxcall does on Linux.

Why SECCOMP_RET_TRACE and not PTRACE_SYSEMU: measured on these VMs (bench/
trap_mechanisms.py), an emulated getppid costs about the same either way (RET_TRACE
22-27 us, SYSEMU 21-24 us per call from a Python tracer); but under SYSEMU the kernel
never runs a call itself, so each passthrough call would have to be re-made by
injection. With RET_TRACE a passthrough call is one stop and a abi.PTRACE_CONT.

Signals: a thread in a seccomp stop takes no signal until the sentry resumes it (as with
the seccomp platform's WAIT_KILLABLE_RECV); SIGKILL still ends it. Signal-delivery stops
are passed on with the signal; group stops are held with abi.PTRACE_LISTEN, so SIGSTOP and
SIGCONT and shells' job control behave as without a tracer.
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import logging
import os
import select
import signal
import socket
from collections.abc import Callable

from ptrace.binding import func as ptrace_func
from ptrace.error import PtraceError

from sentry.platform import Platform, Watch
from sentry.platform.dispatch import Tracer, dispatch
from sentry.platform.seccomp import TRACE_MARKER_NR as MARKER_NR
from sentry.platform.seccomp import TRACE_RESTART_COOKIE as RESTART_COOKIE
from sentry.platform.seccomp import TRACE_RESTART_NR as RESTART_NR
from sentry.platform.seccomp import receive
from syscalls import abi, host
from syscalls.context import SyscallContext

log = logging.getLogger("runsc-py.sentry")


_ALL_SIGNALS = (1 << 64) - 1  # (the kernel leaves SIGKILL and SIGSTOP unblocked)
OPTIONS = (abi.PTRACE_O_TRACESYSGOOD | abi.PTRACE_O_TRACEFORK | abi.PTRACE_O_TRACEVFORK
           | abi.PTRACE_O_TRACECLONE | abi.PTRACE_O_TRACEEXEC
           | abi.PTRACE_O_TRACESECCOMP | abi.PTRACE_O_EXITKILL)
_WALL = 0x40000000
_SKIP = (1 << 64) - 1  # orig_rax -1: the kernel skips the call, rax is its result
_NEW_TASK_EVENTS = (abi.PTRACE_EVENT_FORK, abi.PTRACE_EVENT_VFORK, abi.PTRACE_EVENT_CLONE)
_EXECVE = {59, 322}  # execve, execveat
_FAULTS = {signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGFPE, signal.SIGSYS,
           signal.SIGTRAP}
_STOP_SIGNALS = {signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU}







def _ptrace(request: int, pid: int, addr: int = 0, data: int = 0) -> int:
    """python-ptrace's ptrace(2), failing with OSError (ESRCH: the tracee is gone or not
    stopped)."""
    try:
        return ptrace_func.ptrace(request, pid, addr, data)
    except PtraceError as e:
        raise OSError(e.errno or errno.EIO, str(e)) from None


def _getregs(pid: int):
    try:
        return ptrace_func.ptrace_getregs(pid)
    except PtraceError as e:
        raise OSError(e.errno or errno.EIO, str(e)) from None


def _setregs(pid: int, regs) -> None:
    try:
        ptrace_func.ptrace_setregs(pid, regs)
    except PtraceError as e:
        raise OSError(e.errno or errno.EIO, str(e)) from None


def _sigmask(pid: int, mask: int | None = None) -> int:
    """The thread's blocked-signal mask (abi.PTRACE_GETSIGMASK), or set it (SETSIGMASK)."""
    value = ctypes.c_uint64(mask or 0)
    _ptrace(abi.PTRACE_SETSIGMASK if mask is not None else abi.PTRACE_GETSIGMASK, pid, 8,
            ctypes.addressof(value))
    return value.value


def _event_message(pid: int) -> int:
    """abi.PTRACE_GETEVENTMSG: the new thread's or process's TID at a clone/fork event."""
    value = ctypes.c_ulong()
    _ptrace(abi.PTRACE_GETEVENTMSG, pid, 0, ctypes.addressof(value))
    return value.value


def _signed(v: int) -> int:
    return v - (1 << 64) if v >> 63 else v


class PtraceContext(SyscallContext):
    wait_blocks_freezer = False  # a task in a ptrace stop freezes as it is

    def __init__(self, platform: PtracePlatform, tid: int, regs, serial: int) -> None:
        self.platform, self.pid, self.regs, self.serial = platform, tid, regs, serial
        self.kernel = platform.kernel
        self.nr = regs.orig_rax
        self.args = (regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9)
        self.answered = False
        self._status = None

    def valid(self) -> bool:
        return self.platform.stops.get(self.pid) == self.serial

    def _resume(self, regs_changed: bool, trace_exit: bool = False,
                to_exit: bool = False) -> None:
        """Resume the thread from its stop; with trace_exit --strace reads the call's
        result at its exit stop, with to_exit the platform has work there."""
        platform = self.platform
        if platform.stops.get(self.pid) != self.serial:
            return  # it left the stop (killed): nothing to answer
        del platform.stops[self.pid]
        try:
            if regs_changed:
                _setregs(self.pid, self.regs)
            if trace_exit:
                platform.exits[self.pid] = self
            if trace_exit or to_exit:
                _ptrace(abi.PTRACE_SYSCALL, self.pid)
            else:
                _ptrace(abi.PTRACE_CONT, self.pid)
        except OSError as e:
            if e.errno != errno.ESRCH:
                raise

    def reply(self, value: int) -> None:
        self.answered = True
        self.record(value)
        self.regs.orig_rax, self.regs.rax = _SKIP, value & _SKIP
        self._resume(True)

    def fail(self, err: int) -> None:
        self.answered = True
        self.record(-err)
        if err == abi.ERESTARTSYS:
            # A skipped call (orig_rax -1) is never restarted: the filter skips the
            # restart call with abi.ERESTARTSYS instead, and the call's number is put back
            # at the signal's stop, before the kernel restarts it or says EINTR.
            if self.platform.stops.get(self.pid) == self.serial:
                self.platform.restarts[self.pid] = (self.nr, self.regs.rdi)
            self.regs.orig_rax, self.regs.rdi = RESTART_NR, RESTART_COOKIE
            self._resume(True)
            return
        self.regs.orig_rax, self.regs.rax = _SKIP, -err & _SKIP
        self._resume(True)

    def passthrough(self) -> None:
        self.answered = True
        # Under --strace the kernel's result is read at the call's exit stop.
        self.result_later = self.late_trace is None and self.platform.tracer is not None
        self._resume(False, trace_exit=self.platform.tracer is not None)

    def install_fd(self, fd: int, cloexec: bool) -> None:
        platform = self.platform
        if platform.stops.get(self.pid) != self.serial:
            self.answered = True
            return
        old = platform.handovers.pop(self.pid, None)
        if old is not None:
            os.close(old[0])
        # No signal may end the marker's wait (the call it stands for has happened):
        # every signal blocked until its exit stop, then the thread's own mask again,
        # so a pending signal is delivered after the call, as Linux delivers it.
        try:
            platform.masks[self.pid] = _sigmask(self.pid)
            _sigmask(self.pid, _ALL_SIGNALS)
        except OSError:
            self.answered = True  # gone meanwhile
            return
        platform.handovers[self.pid] = (os.dup(fd), cloexec, self)
        self.answered = True
        self.result_later = True  # the number is known when the listener installs it
        self.regs.orig_rax = MARKER_NR
        self._resume(True, to_exit=True)


class PtracePlatform(Platform):
    """The tracer of every workload thread of one sandbox."""

    name = "ptrace"
    sentry_syscalls = ("ptrace",)  # (wait4 is in the sentry's allowlist already)

    def __init__(self, kernel: object, watch: Watch, unwatch: Callable[[int], None],
                 tracer: Tracer | None = None) -> None:
        super().__init__(kernel, watch, unwatch, tracer)
        self.stops: dict[int, int] = {}  # tid -> serial of the seccomp stop it is in
        self.exits: dict[int, PtraceContext] = {}  # tid -> call whose exit stop comes
        self.handovers: dict[int, tuple[int, bool, PtraceContext]] = {}
        # tid -> (number, first argument) of the call a signal interrupted (fail)
        self.restarts: dict[int, tuple[int, int]] = {}
        self.masks: dict[int, int] = {}  # tid -> its signal mask, during a hand-over
        self.foreign: dict[int, int] = {}  # the sentry's own children reaped here: status
        self.tracees: set[int] = set()
        self.started: set[int] = set()  # tracees past their first execve (or forked after)
        self.serial = 0
        self.ending = False
        self.listening: set[int] = set()  # tracees held in a group stop (abi.PTRACE_LISTEN)
        kernel.task_state = self.task_state
        # SIGCHLD (a tracee stopped or ended) wakes the event loop through this pipe.
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.signal(signal.SIGCHLD, lambda _s, _f: None)
        signal.siginterrupt(signal.SIGCHLD, False)  # SA_RESTART: calls go on
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        watch(self.wake_r, lambda _events: self.ready())

    # -- processes ---------------------------------------------------------------
    def attach(self, pid: int, sock: socket.socket) -> None:
        """Trace the new process before it loads its filter (it waits for "go")."""
        msg = sock.recv(4096)
        if msg != b"attach":
            raise OSError(errno.ECHILD, msg.decode(errors="replace").removeprefix("error:")
                          or "the process failed to start in the sandbox")
        _ptrace(abi.PTRACE_SEIZE, pid, 0, OPTIONS)
        self.tracees.add(pid)
        sock.send(b"go")

    def receive(self, sock: socket.socket, fds: int = 0) -> tuple[bytes, list[int]]:
        self.wait_readable(sock.fileno())  # its own calls stop here meanwhile
        return super().receive(sock, fds)

    def add_process(self, notify_fd: int) -> None:
        self.add_listener(notify_fd)

    def reaped(self, pid: int) -> int | None:
        return self.foreign.get(pid)

    def add_listener(self, notify_fd: int) -> None:
        """The seccomp listener of a process's filter: only descriptor hand-overs."""
        def on_event(events: int) -> None:
            if events & select.EPOLLIN:
                self._handover(notify_fd)
            elif events & (select.EPOLLHUP | select.EPOLLERR):
                self.unwatch(notify_fd)
                os.close(notify_fd)

        self.watch(notify_fd, on_event)

    def wait_readable(self, sock_fd: int) -> None:
        """Serve tracees until sock_fd is readable (a new process's set-up messages come
        while its own syscalls stop here)."""
        poller = select.poll()
        poller.register(sock_fd, select.POLLIN)
        poller.register(self.wake_r, select.POLLIN)
        while True:
            ready = {fd for fd, _ in poller.poll(100)}
            self.ready()
            if sock_fd in ready:
                return

    def release(self, until_pid: int) -> None:
        """At the end: keep reaping tracees (the kernel reports a traced process's exit
        to its parent only once its tracer has waited for it) until until_pid, the
        spawner, has exited; calls still made meanwhile are refused, never run."""
        self.ending = True
        while True:
            try:
                pid, status = os.waitpid(-1, _WALL)
            except ChildProcessError:
                return
            if pid == until_pid:
                self.foreign[pid] = status
                return
            self._event(pid, status)

    # -- events ------------------------------------------------------------------
    def ready(self) -> None:
        try:
            while os.read(self.wake_r, 512):
                pass
        except BlockingIOError:
            pass
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG | _WALL)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self._event(pid, status)

    def _event(self, pid: int, status: int) -> None:
        if os.WIFEXITED(status) or os.WIFSIGNALED(status):
            if pid in self.tracees:
                self._gone(pid)
            else:
                self.foreign[pid] = status  # the gofer, spawner or watchdog
            return
        if not os.WIFSTOPPED(status):
            return
        self.tracees.add(pid)  # (an auto-attached thread may report before its parent)
        self.listening.discard(pid)
        sig, event = os.WSTOPSIG(status), status >> 16
        try:
            if pid in self.restarts and event != abi.PTRACE_EVENT_SECCOMP:
                self._unmark_restart(pid)
            if event == abi.PTRACE_EVENT_SECCOMP:
                self._syscall(pid)
            elif sig == signal.SIGTRAP | 0x80:
                self._syscall_exit(pid)
            elif event == abi.PTRACE_EVENT_STOP:
                # Under abi.PTRACE_SEIZE a group stop is this event with the stop signal;
                # with SIGTRAP it is a new tracee's first stop or the wake after SIGCONT.
                if sig in _STOP_SIGNALS:
                    _ptrace(abi.PTRACE_LISTEN, pid)  # stopped as without a tracer
                    self.listening.add(pid)
                else:
                    _ptrace(abi.PTRACE_CONT, pid)
            elif event:
                if event == abi.PTRACE_EVENT_EXEC:
                    self.started.add(pid)
                elif event in _NEW_TASK_EVENTS and pid in self.started:
                    self.started.add(_event_message(pid))
                # fork, vfork, clone, exec: go on (to the call's exit stop, if --strace
                # waits for its result)
                _ptrace(abi.PTRACE_SYSCALL if pid in self.exits else abi.PTRACE_CONT, pid)
            elif sig in _FAULTS and self._init_dies_of(pid, sig):
                # Linux lets a fault's default action end a namespace's init only when
                # nothing traces it (force_sig_info keeps SIGNAL_UNKILLABLE for a
                # tracee): the init would fault again and again. Untraced, it dies as
                # it would without a tracer.
                _ptrace(abi.PTRACE_DETACH, pid, 0, sig)
                self._gone(pid)
            else:
                _ptrace(abi.PTRACE_CONT, pid, 0, sig)  # a signal: delivered as it came
        except OSError as e:
            if e.errno != errno.ESRCH:  # killed meanwhile: its exit comes next
                raise

    def _init_dies_of(self, tid: int, sig: int) -> bool:
        """Whether tid is a thread of the sandbox's init whose action for sig is the
        default (a fault then ends it)."""
        try:
            with open(f"/proc/{tid}/status", "rb") as f:
                fields = dict(line.split(b":", 1) for line in f.read().splitlines()
                              if b":" in line)
            nspid = fields[b"NSpid"].split()
            caught = int(fields[b"SigCgt"], 16) | int(fields[b"SigIgn"], 16)
        except (OSError, KeyError, ValueError):
            return False
        tgid_is_init = int(fields[b"NStgid"].split()[-1]) == 1 if b"NStgid" in fields else \
            nspid[-1] == b"1"
        return tgid_is_init and not caught >> (sig - 1) & 1

    def _unmark_restart(self, tid: int) -> None:
        """The interrupted call's own number and argument back in place (at the signal's
        stop: the kernel restarts the call from orig_rax after it)."""
        nr, arg0 = self.restarts.pop(tid)
        regs = _getregs(tid)
        if regs.orig_rax == RESTART_NR:
            regs.orig_rax, regs.rdi = nr, arg0
            _setregs(tid, regs)

    def task_state(self, tid: int) -> bytes | None:
        """/proc's state of a thread in a ptrace stop, as it would be untraced."""
        if tid in self.listening:
            return b"T (stopped)"
        if tid in self.stops:
            return b"S (sleeping)"  # in a call, waiting for its answer
        return None

    def _gone(self, tid: int) -> None:
        self.restarts.pop(tid, None)
        self.masks.pop(tid, None)
        self.listening.discard(tid)
        self.tracees.discard(tid)
        self.started.discard(tid)
        self.stops.pop(tid, None)
        ctx = self.exits.pop(tid, None)
        if ctx is not None:
            ctx.record(None)  # exit, exit_group, or killed in the call: no result
        handover = self.handovers.pop(tid, None)
        if handover is not None:
            os.close(handover[0])

    def _syscall(self, tid: int) -> None:
        self.restarts.pop(tid, None)
        regs = _getregs(tid)
        self.serial += 1
        self.stops[tid] = self.serial
        # --strace shows the workload's calls: from its first execve on, not the
        # runtime's own set-up before it.
        if regs.orig_rax in _EXECVE:
            self.started.add(tid)
        tracer = self.tracer if tid in self.started else None
        ctx = PtraceContext(self, tid, regs, self.serial)
        if self.ending:
            ctx.fail(errno.ENOSYS)  # the sandbox is going: the gofer may be gone already
            return
        dispatch(ctx, tracer)

    def _syscall_exit(self, tid: int) -> None:
        ctx = self.exits.pop(tid, None)
        if ctx is not None:
            ctx.record(_signed(_getregs(tid).rax))
        mask = self.masks.pop(tid, None)
        if mask is not None:
            _sigmask(tid, mask)  # after a hand-over: the thread's own signal mask again
        _ptrace(abi.PTRACE_CONT, tid)

    def _handover(self, notify_fd: int) -> None:
        buf = bytearray(abi.SECCOMP_NOTIF.size)
        if not receive(notify_fd, buf):
            return
        nid, tid = abi.SECCOMP_NOTIF.unpack_from(buf)[:2]
        handover = self.handovers.pop(tid, None)
        if handover is None:  # the workload's own tuxcall
            _send(notify_fd, nid, -errno.ENOSYS)
            return
        fd, cloexec, ctx = handover
        try:
            req = abi.SECCOMP_NOTIF_ADDFD.pack(nid, abi.SECCOMP_ADDFD_FLAG_SEND, fd, 0,
                                               os.O_CLOEXEC if cloexec else 0)
            ctx.record(host.ioctl_value_unsignalled(notify_fd, abi.SECCOMP_IOCTL_NOTIF_ADDFD, req))
        except OSError as e:
            if e.errno not in (errno.ENOENT, errno.EINPROGRESS):
                ctx.record(-(e.errno or errno.EIO))
                _send(notify_fd, nid, -(e.errno or errno.EIO))
        finally:
            os.close(fd)


def _send(notify_fd: int, nid: int, err: int) -> None:
    try:
        fcntl.ioctl(notify_fd, abi.SECCOMP_IOCTL_NOTIF_SEND,
                    abi.SECCOMP_NOTIF_RESP.pack(nid, 0, err, 0))
    except OSError as e:
        if e.errno != errno.ENOENT:
            raise
