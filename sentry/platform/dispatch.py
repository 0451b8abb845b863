"""The one way a trapped syscall is answered, whichever platform trapped it.

A platform turns what arrives (a seccomp notification, a ptrace stop) into a
SyscallContext and calls dispatch(). Dispatch looks the call up in the syscall table and
sees that it gets exactly one answer: a PASSTHROUGH call runs in the host kernel (only
the ptrace platform sees those), an EMULATE call goes through the kernel's argument
checks and then its handler, and a DENY call (the filter refuses those before they reach
a platform; this is a second line) fails with its errno.

Handlers answer in one of three ways: return an int (the syscall's value), raise OSError
(its errno), or call one of the context's own answers (install_fd, passthrough, defer,
or reply/fail where the answer must precede other work, as SIGXFSZ's does). A handler
that does none of these is a sentry bug: the call fails with ENOSYS and the log says so,
so that no thread ever waits for an answer that will not come.
"""
from __future__ import annotations

import abc
import errno
import logging
import time

from gofer.client import GoferGone
from syscalls.argtypes import cast
from syscalls.context import SyscallContext, TargetGone
from syscalls.table import HANDLER_ARG_TYPES, HANDLER_CHECKS, HANDLERS, TABLE, Kind

log = logging.getLogger("runsc-py.sentry")


class Tracer(abc.ABC):
    """What --strace needs from dispatch (sentry/strace.py): called before and after
    each syscall."""

    @abc.abstractmethod
    def wants(self, nr: int) -> bool:
        """Whether calls of this number are logged."""

    @abc.abstractmethod
    def enter(self, ctx: SyscallContext, kind: Kind) -> object:
        """Before the answer, while the caller waits: what exit() needs."""

    @abc.abstractmethod
    def exit(self, ctx: SyscallContext, token: object, elapsed: float | None,
             resumed: bool = False) -> None:
        """After the answer (resumed: a call answered later, or by the kernel)."""


def dispatch(ctx: SyscallContext, tracer: Tracer | None = None) -> None:
    """Answer ctx; with a tracer (--strace), log the call and its answer."""
    sc = TABLE.get(ctx.nr)
    kind = sc.kind if sc is not None else Kind.DENY
    if tracer is not None and tracer.wants(ctx.nr):
        token = tracer.enter(ctx, kind)
        start = time.perf_counter()
        _answer(ctx, sc, kind)
        elapsed = time.perf_counter() - start
        if ctx.outcome is None and ctx.result_later:
            # The platform reports the kernel's result (ptrace: at the syscall's exit).
            ctx.late_trace = (tracer, (token, elapsed))
            return
        tracer.exit(ctx, token, elapsed)
        if ctx.outcome is None and ctx.deferred:
            ctx.late_trace = (tracer, (token, None))  # logged again with the answer
    else:
        _answer(ctx, sc, kind)


def _answer(ctx: SyscallContext, sc, kind: Kind) -> None:
    if kind is Kind.PASSTHROUGH:
        ctx.passthrough()  # (the filter's argument rules have already been applied)
        return
    if kind is Kind.DENY:
        ctx.fail(sc.errno if sc is not None else errno.ENOSYS)
        return
    try:
        # Handlers see int and umode_t arguments as the kernel's C code does.
        ctx.args = cast(HANDLER_ARG_TYPES[ctx.nr], ctx.args)
        check = HANDLER_CHECKS.get(ctx.nr)
        if check is not None:
            check(ctx)  # Linux's argument checks come before any path or permission
        if not ctx.answered:
            value = HANDLERS[ctx.nr](ctx)
            if value is not None and not ctx.answered:
                ctx.reply(value)
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
