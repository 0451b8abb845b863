"""What a syscall handler sees: the interface every platform implements.

Handlers never know which platform runs them. They read arguments and workload memory,
then answer exactly once: reply(value), fail(errno), install_fd(fd) or passthrough().
An OSError raised by a handler is answered as fail(its errno). A handler whose answer
comes later (a FIFO open waiting in the gofer) calls defer() and hands the context to
whoever answers, e.g. FdLater; valid() says whether the thread still waits.
"""
from __future__ import annotations

import abc
import errno
import os

from syscalls import abi, host

PATH_MAX = 4096
# Only the fields handlers use: parsing all of /proc/TID/status costs more than reading it.
_STATUS_FIELDS = (b"Umask", b"Tgid", b"Uid", b"Gid", b"Groups", b"CapPrm", b"CapEff")
_SIGNAL_FIELDS = (b"State", b"Tgid", b"Threads", b"SigPnd", b"ShdPnd", b"SigBlk")
# The error a syscall returns when a signal interrupts it: the kernel never shows it to
# the workload but applies Linux's restart rules on the way out (EINTR when the handler
# lacks SA_RESTART, a restart otherwise or after a stop). Answered only when a signal
# will be delivered: without one pending the workload would see errno 512.
_SCAN_THREADS = 256  # at most this many threads' status read for one waiting call


def _status_fields(raw: bytes, fields: tuple[bytes, ...] = _STATUS_FIELDS) -> dict[str, str]:
    out = {}
    for key in fields:
        start = raw.find(b"\n" + key + b":\t")
        if start < 0:
            continue
        start += len(key) + 3
        out[key.decode()] = raw[start:raw.find(b"\n", start)].decode()
    return out


class TargetGone(Exception):
    """The trapped syscall no longer waits for an answer (the thread died or was
    interrupted): drop it without answering."""


class SyscallContext(abc.ABC):
    nr: int
    args: tuple[int, int, int, int, int, int]
    pid: int  # the calling thread, as the sentry sees it (host pid namespace)
    kernel: object  # the sentry's virtual kernel (hostname, gofer, procfs, ...)
    answered: bool
    # What the platform answered (the value, or -errno; None: not yet, or the kernel runs
    # the call), for --strace; whether the answer comes later; and the --strace record to
    # finish when it does.
    outcome: int | None = None
    deferred: bool = False
    result_later: bool = False  # the platform will record() the kernel's own result
    # Whether a thread waiting for this answer keeps the cgroup freezer from freezing it
    # (a seccomp notification's killable wait does; a ptrace stop freezes as it is).
    wait_blocks_freezer: bool = True
    late_trace: tuple | None = None

    def record(self, outcome: int | None) -> None:
        """Called by the platform with each answer it gives (and, under ptrace, with the
        kernel's result of a call it let run)."""
        self.outcome = outcome
        if self.late_trace is not None:
            tracer, (token, elapsed) = self.late_trace
            self.late_trace = None
            tracer.exit(self, token, elapsed, resumed=elapsed is None)

    def read(self, addr: int, size: int) -> bytes:
        """size bytes of the caller's memory at addr (EFAULT as copy_from_user says)."""
        try:
            data = host.process_vm_read(self.pid, addr, size)
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
            n = host.process_vm_write(self.pid, addr, data)
        except OSError as e:
            if e.errno == errno.ESRCH:
                raise TargetGone() from None
            raise OSError(errno.EFAULT, "bad address") from None
        if n != len(data):
            raise OSError(errno.EFAULT, "bad address")

    def validate(self) -> None:
        """Raise TargetGone unless the trapped syscall still waits for its answer. Every
        value read about the caller (its memory, its /proc entries) is trusted only after
        a validate() that follows the read: the thread could have died and its TID been
        reused, or a sibling's execve could have taken over the thread group leader's."""
        if not self.valid():
            raise TargetGone()

    @abc.abstractmethod
    def reply(self, value: int) -> None: ...

    @abc.abstractmethod
    def fail(self, err: int) -> None: ...

    @abc.abstractmethod
    def install_fd(self, fd: int, cloexec: bool) -> None:
        """Install fd (the sentry's copy, closed by the caller) in the workload and
        answer the syscall with its number there."""

    @abc.abstractmethod
    def passthrough(self) -> None:
        """Let the host kernel run the syscall as it is."""

    @abc.abstractmethod
    def valid(self) -> bool:
        """True while the calling thread still waits for this answer (False once a signal
        interrupted the syscall or the thread died)."""

    def defer(self) -> None:
        """Return from the handler without an answer: it comes later."""
        self.answered = True
        self.deferred = True

    def take_fd(self, fd: int) -> int:
        """The sentry's copy of the caller's descriptor fd (pidfd_getfd: the same open
        file, never a second lookup by path). EBADF when the caller has no such fd."""
        if fd < 0:
            raise OSError(errno.EBADF, "bad file descriptor")
        try:
            pidfd = os.pidfd_open(self.pid, abi.PIDFD_THREAD)
        except OSError:
            raise TargetGone() from None
        try:
            self.validate()  # the pidfd names the caller, not a task that reused its TID
            return host.pidfd_getfd(pidfd, fd)
        finally:
            os.close(pidfd)

    def read_cstring(self, addr: int, limit: int = PATH_MAX) -> bytes:
        """A NUL-terminated string from workload memory (ENAMETOOLONG past limit)."""
        if addr == 0:
            raise OSError(errno.EFAULT, "null pointer")
        out = b""
        while len(out) < limit:
            chunk = 4096 - (addr + len(out)) % 4096  # never cross a page in one read
            data = self.read(addr + len(out), chunk)
            nul = data.find(b"\0")
            if nul >= 0:
                if len(out) + nul >= limit:  # the limit counts the NUL, as PATH_MAX does
                    break
                return out + data[:nul]
            out += data
            if len(data) < chunk:
                raise OSError(errno.EFAULT, "bad address")
        raise OSError(errno.ENAMETOOLONG, "path too long")

    def creds(self) -> tuple[int, int, list[int], int, int]:
        """(fsuid, fsgid, groups, umask, effective capabilities) of the calling thread:
        the gofer acts with exactly these, so a container without CAP_DAC_OVERRIDE, say,
        gets EACCES from it as from the kernel."""
        status = self.status()
        return (int(status["Uid"].split()[3]), int(status["Gid"].split()[3]),
                [int(g) for g in status.get("Groups", "").split()], int(status["Umask"], 8),
                int(status["CapEff"], 16))

    def real_ids(self) -> tuple[int, int]:
        status = self.status()
        return int(status["Uid"].split()[0]), int(status["Gid"].split()[0])

    def _proc_file(self, name: str) -> bytes:
        """/proc/TID/name of the caller, trusted only once validate() has followed it."""
        try:
            fd = os.open(f"/proc/{self.pid}/{name}", os.O_RDONLY | os.O_CLOEXEC)
            try:
                raw = os.read(fd, 8192)
            finally:
                os.close(fd)
        except OSError:
            raise TargetGone() from None
        self.validate()
        return raw

    def file_size_limit(self) -> int | None:
        """The calling thread's RLIMIT_FSIZE soft limit in bytes (None: unlimited)."""
        raw = self._proc_file("limits")
        for line in raw.splitlines():
            if line.startswith(b"Max file size"):
                soft = line[len(b"Max file size"):].split()[0]
                return None if soft == b"unlimited" else int(soft)
        return None

    def status(self) -> dict[str, str]:
        """The fields of /proc/TID/status this handler asked for, read once per syscall."""
        cached = getattr(self, "_status", None)
        if cached is None:
            cached = _status_fields(self._proc_file("status"))
            self._status = cached
        return cached


def _read_status(tid: int | str, tgid: int | str | None = None) -> dict[str, str] | None:
    path = f"/proc/{tid}/status" if tgid is None else f"/proc/{tgid}/task/{tid}/status"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            raw = os.read(fd, 8192)
        finally:
            os.close(fd)
    except OSError:
        return None
    return _status_fields(raw, _SIGNAL_FIELDS)


def _sentry_waiters(ctx: SyscallContext) -> set[int]:
    """The threads whose FIFO opens wait in the sentry."""
    waiting = getattr(getattr(ctx.kernel, "gofer", None), "waiting", {})
    return {w.ctx.pid for w in waiting.values() if isinstance(w, FdLater)}


def signal_pending(ctx: SyscallContext, seen: int = 0) -> tuple[bool, int]:
    """Whether the kernel has marked the waiting thread for signal delivery (its
    TIF_SIGPENDING, which /proc does not show), and the signals pending for its process
    that it does not block (give them as `seen` to the next call). Marked are: a thread
    that a signal was sent to, unless it blocks it; one that a signal sent to the process
    (kill, a timer, a tty's SIGINT) went to, which is certain when every other thread
    blocks it and, for the thread group leader (the kernel's first choice), when it is
    still pending at the next check (a running thread would have taken it); and one whose
    process is in a group stop. On Linux any of them ends an interruptible wait such as a
    FIFO open."""
    st = _read_status(ctx.pid)
    if st is None:
        raise TargetGone()
    ctx.validate()  # the fields are the waiting thread's, not a reused TID's
    try:
        blocked = int(st["SigBlk"], 16)
        if int(st["SigPnd"], 16) & ~blocked:
            return True, 0
        shared = int(st["ShdPnd"], 16) & ~blocked
        threads = int(st["Threads"])
        tgid = st["Tgid"]
    except (KeyError, ValueError):
        return False, 0
    if shared and threads == 1:
        return True, shared
    if shared & seen and tgid == str(ctx.pid):
        # Unless another thread of the process waits in the sentry too (the kernel may have
        # chosen it, as the thread a child's SIGCHLD is sent to first): then neither is
        # certain. (One in a long uninterruptible sleep of its own could be chosen too:
        # rare, and it would see errno 512; README.)
        for tid in _sentry_waiters(ctx):
            if tid != ctx.pid and (other := _read_status(tid, tgid)) is not None:
                try:
                    shared &= int(other.get("SigBlk", "0"), 16)
                except ValueError:
                    shared = 0
        if shared:
            return True, shared
    try:
        tids = os.listdir(f"/proc/{tgid}/task")
    except OSError:
        return False, shared
    if len(tids) > _SCAN_THREADS:
        return False, shared  # the workload's thread count must not set the sentry's work
    only_us = shared
    for tid in tids:
        if tid == str(ctx.pid):
            continue
        other = _read_status(tid, tgid)
        if other is None:
            continue  # gone: it takes nothing
        state = other.get("State", "")[:1]
        if state == "T":
            # "T" (not "t", a ptrace stop) is only ever a stop of the whole group: the
            # first thread to stop told the others, this one too (signal_wake_up).
            return True, shared
        if state in ("t", "Z", "X"):
            continue  # traced and stopped, or exiting: it takes no signal
        try:
            only_us &= int(other["SigBlk"], 16)  # what this thread could not have taken
        except (KeyError, ValueError):
            return False, shared
    return only_us != 0, shared


class FdLater:
    """A descriptor the gofer gives later (a FIFO open, once the other end is opened):
    installed as the syscall's answer, unless the thread no longer waits."""
    __slots__ = ("ctx", "cloexec", "seen")

    def __init__(self, ctx: SyscallContext, cloexec: bool) -> None:
        self.ctx, self.cloexec = ctx, cloexec
        self.seen = 0  # the process's pending signals at the last check

    def wanted(self) -> bool:
        """False once the thread no longer waits, or once a signal interrupted the open:
        then it is answered abi.ERESTARTSYS here, as Linux's interruptible wait would end."""
        ctx = self.ctx
        try:
            if not ctx.valid():
                return False
            interrupted, self.seen = signal_pending(ctx, self.seen)
            # pause: a thread in a killable wait cannot freeze until it is answered (and
            # the freezer has marked it): it freezes, and the open restarts after resume.
            cgroup = getattr(ctx.kernel, "cgroup", None)
            if interrupted or (ctx.wait_blocks_freezer and cgroup is not None
                               and cgroup.freezing()):
                ctx.fail(abi.ERESTARTSYS)
                return False
        except TargetGone:
            return False
        return True

    def done(self, fd: int | None, err: int) -> None:
        ctx = self.ctx
        try:
            if fd is None:
                ctx.fail(err)
            else:
                ctx.install_fd(fd, self.cloexec)  # ENOENT (no longer waiting) is answered
        except OSError as e:
            ctx.fail(e.errno or errno.EIO)  # (EMFILE) as a handler's OSError
