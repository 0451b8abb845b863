"""--strace: every syscall the sentry sees, logged as strace prints it.

Names and decoded arguments come from python-ptrace's syscall formatter (PtraceSyscall),
reading the workload's memory through the call's own context; results are formatted by
it too. Each line carries the sandbox's PID and TID, the call's class in the syscall
table, and for emulated calls the time the sentry took. Under the seccomp platform only
emulated calls reach the sentry; under ptrace, every call does.

Formatting never touches the answer: any error while decoding an argument falls back to
its raw value, and a call whose memory cannot be read is still answered.
"""
from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Iterable
from typing import TextIO

from ptrace.func_call import FunctionCallOptions
from ptrace.syscall.ptrace_syscall import PtraceSyscall

from sentry.platform.dispatch import Tracer
from syscalls.context import SyscallContext
from syscalls.table import TABLE, Kind

log = logging.getLogger("runsc-py.sentry")
_OPTIONS = FunctionCallOptions(write_types=False, write_argname=False,
                               replace_socketcall=False, string_max_length=64,
                               write_address=False, max_array_count=16)


class _Regs:
    """The registers PtraceSyscall reads (x86_64), made from a context's arguments."""

    def __init__(self, nr: int, args: Iterable[int], result: int = 0) -> None:
        self.orig_rax = nr
        self.rdi, self.rsi, self.rdx, self.r10, self.r8, self.r9 = (
            a & 0xFFFF_FFFF_FFFF_FFFF for a in args)
        self.rax = result & 0xFFFF_FFFF_FFFF_FFFF


class _Memory:
    """The process interface python-ptrace's formatter uses, over a context's reads."""

    def __init__(self, ctx: SyscallContext, regs: _Regs) -> None:
        self.ctx, self.regs = ctx, regs

    def getregs(self) -> _Regs:
        return self.regs

    def getreg(self, name: str) -> int:
        return getattr(self.regs, name)

    def readBytes(self, address: int, size: int) -> bytes:  # noqa: N802 (python-ptrace's)
        return self.ctx.read(address, size)

    def readWord(self, address: int) -> int:  # noqa: N802
        return int.from_bytes(self.ctx.read(address, 8), "little")

    def readStruct(self, address: int, struct):  # noqa: N802
        import ctypes

        return struct.from_buffer_copy(self.ctx.read(address, ctypes.sizeof(struct)))

    def readArray(self, address: int, basetype, count: int):  # noqa: N802
        import ctypes

        return (basetype * count).from_buffer_copy(
            self.ctx.read(address, ctypes.sizeof(basetype) * count))

    def readCString(self, address: int, max_size: int) -> tuple[bytes, bool]:  # noqa: N802
        data = b""
        while len(data) <= max_size:
            chunk = self.ctx.read(address + len(data), 4096 - (address + len(data)) % 4096)
            nul = chunk.find(b"\0")
            if nul >= 0:
                data += chunk[:nul]
                break
            data += chunk
        return data[:max_size], len(data) > max_size


class Strace(Tracer):
    def __init__(self, out: TextIO | None, fmt: str, only: set[str] | None,
                 sandbox_tid: Callable[[int], int | None],
                 sandbox_pid: Callable[[SyscallContext], int | None]) -> None:
        self.out = out or sys.stderr
        self.json = fmt == "json"
        self.nrs = None if only is None else {nr for nr, sc in TABLE.items()
                                              if sc.name in only}
        self.sandbox_tid, self.sandbox_pid = sandbox_tid, sandbox_pid

    def wants(self, nr: int) -> bool:
        return self.nrs is None or nr in self.nrs

    def enter(self, ctx: SyscallContext, kind: Kind) -> object:
        regs = _Regs(ctx.nr, ctx.args)
        call = PtraceSyscall(_Memory(ctx, regs), _OPTIONS, regs)
        try:
            call.enter(regs)
            text = call.format()
        except Exception:  # unreadable memory, an unexpected value: the raw arguments
            text = f"{call.name}({', '.join(hex(a) for a in ctx.args)})"
        # Who made the call, while it still waits (after the answer it may be gone).
        return call, text, kind, self.sandbox_pid(ctx), self.sandbox_tid(ctx.pid)

    def exit(self, ctx: SyscallContext, token: object, elapsed: float | None,
             resumed: bool = False) -> None:
        call, text, kind, pid, tid = token
        if resumed:
            text = f"<... {call.name} resumed>"
        outcome = ctx.outcome
        if outcome is None:
            result = "?" if not ctx.deferred else "<unfinished ...>"
            value = None
        else:
            call.process.regs.rax = outcome & 0xFFFF_FFFF_FFFF_FFFF
            try:
                result = call.exit()
            except Exception:
                result = str(outcome)
            value = outcome
        if self.json:
            line = json.dumps({
                "time": time.time(), "pid": pid, "tid": tid, "name": call.name,
                "call": text, "result": value,
                "errno": -value if value is not None and value < 0 else None,
                "text": result, "class": kind.value,
                "sentry_us": None if elapsed is None else round(elapsed * 1e6, 1)})
        else:
            took = "" if elapsed is None or kind is not Kind.EMULATE else \
                f", {elapsed * 1e6:.0f} us"
            line = f"[{pid}:{tid}] {text} = {result} ({kind.value}{took})"
        try:
            self.out.write(line + "\n")
            self.out.flush()
        except (OSError, ValueError) as e:
            log.warning("strace output lost: %s", e)
