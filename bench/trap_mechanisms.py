"""Which ptrace mechanism the ptrace platform should stop syscalls with (issue 13):
SECCOMP_RET_TRACE (a seccomp stop at the calls the filter marks) or PTRACE_SYSEMU (a stop
at every call, which the kernel then never runs). Both measured here from a Python tracer
answering getppid with a value, as the platform answers an emulated call.

    python3 -m bench.trap_mechanisms [--calls N] [--rounds R]

Prints microseconds per answered call for each, per round (runs interleaved).
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyseccomp
from ptrace.binding import func as ptrace_func

_LOOP_C = "#include <unistd.h>\n#include <sys/syscall.h>\n" \
          "int main(void) { for (;;) syscall(SYS_getppid); }\n"
_GETPPID = 110
_SEIZE, _SYSEMU = 0x4206, 31
_O_SYSGOOD, _O_EXEC, _O_SECCOMP, _O_EXITKILL = 0x1, 0x10, 0x80, 0x100000
_EVENT_EXEC, _EVENT_SECCOMP, _EVENT_STOP = 4, 7, 128
_SKIP = (1 << 64) - 1


def _child(mode: str, loop: str, go: int) -> None:
    os.read(go, 1)
    if mode == "ret_trace":
        f = pyseccomp.SyscallFilter(pyseccomp.ALLOW)
        f.add_rule(pyseccomp.TRACE(0), _GETPPID)
        f.load()
    os.execv(loop, [loop])


def measure(mode: str, loop: str, calls: int) -> float:
    """Microseconds per getppid answered by this process as the tracer."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(w)
            _child(mode, loop, r)
        finally:
            os._exit(1)
    os.close(r)
    ptrace_func.ptrace(_SEIZE, pid, 0, _O_SYSGOOD | _O_EXEC | _O_SECCOMP | _O_EXITKILL)
    os.write(w, b"x")
    os.close(w)
    answered, start = 0, None
    try:
        while answered < calls:
            _, status = os.waitpid(pid, 0x40000000)
            sig, event = os.WSTOPSIG(status), status >> 16
            if mode == "ret_trace" and event == _EVENT_SECCOMP:
                start = start or time.perf_counter()
                regs = ptrace_func.ptrace_getregs(pid)
                regs.orig_rax, regs.rax = _SKIP, 1
                ptrace_func.ptrace_setregs(pid, regs)
                answered += 1
                ptrace_func.ptrace_cont(pid, 0)
            elif mode == "sysemu" and event == _EVENT_EXEC:
                ptrace_func.ptrace_syscall(pid, 0)  # the program's start-up runs
            elif mode == "sysemu" and sig == signal.SIGTRAP | 0x80:
                regs = ptrace_func.ptrace_getregs(pid)
                if start is None:  # from the first getppid on, no call runs
                    if regs.orig_rax == _GETPPID:
                        start = time.perf_counter()
                        ptrace_func.ptrace(_SYSEMU, pid, 0, 0)
                    else:
                        ptrace_func.ptrace_syscall(pid, 0)
                    continue
                regs.rax = 1
                ptrace_func.ptrace_setregs(pid, regs)
                answered += 1
                ptrace_func.ptrace(_SYSEMU, pid, 0, 0)
            else:
                ptrace_func.ptrace_cont(pid, 0 if event or sig == signal.SIGSTOP else sig)
        return (time.perf_counter() - start) / calls * 1e6
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m bench.trap_mechanisms")
    p.add_argument("--calls", type=int, default=20000)
    p.add_argument("--rounds", type=int, default=3)
    opts = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        src, loop = Path(tmp) / "loop.c", Path(tmp) / "loop"
        src.write_text(_LOOP_C)
        subprocess.run(["gcc", "-O2", "-static", "-o", str(loop), str(src)], check=True)
        for rnd in range(opts.rounds):
            a = measure("ret_trace", str(loop), opts.calls)
            b = measure("sysemu", str(loop), opts.calls)
            print(f"round {rnd + 1}: SECCOMP_RET_TRACE {a:.1f} us/call, "
                  f"PTRACE_SYSEMU {b:.1f} us/call")
    return 0


if __name__ == "__main__":
    sys.exit(main())
