"""The clock-adjusting calls: adjtimex, clock_adjtime and settimeofday.

They change the host's clock, which no namespace confines, so a change is never made
here. But Linux checks their arguments before the capability, and adjtimex with no mode
(a read of the clock's state) works for anyone: what a caller sees must be Linux's.

- adjtimex and clock_adjtime go to the kernel when the calling thread lacks
  abi.CAP_SYS_TIME in its effective set: the kernel then refuses every change itself (EPERM,
  after its own argument checks) and answers reads. The decision is on the caller's own
  credentials, which nothing can change while it waits in the call (only a thread
  changes its credentials, and it is stopped here), not on the struct in its memory,
  which another thread could rewrite. A caller with abi.CAP_SYS_TIME gets EPERM from the
  sentry (it would be able to set the host's clock), also for a read.
- settimeofday is answered by the sentry alone, in Linux's order: the timeval is
  copied (EFAULT) and its microseconds checked (EINVAL), the timezone copied (EFAULT),
  the time checked against what the clock can hold (EINVAL), then the capability
  (EPERM); with abi.CAP_SYS_TIME the timezone's range (EINVAL), and then, where Linux would
  set the clock or the timezone, EPERM. settimeofday(NULL, NULL) changes nothing and
  returns 0 for a caller with abi.CAP_SYS_TIME, EPERM otherwise, as on Linux.
"""
from __future__ import annotations

import errno
import struct

from syscalls import abi
from syscalls.context import SyscallContext

# The kernel's TIME_SETTOD_SEC_MAX: KTIME_SEC_MAX less 30 years of uptime.
_SETTOD_SEC_MAX = (2**63 - 1) // 1_000_000_000 - 30 * 365 * 24 * 3600


def _has_sys_time(ctx: SyscallContext) -> bool:
    return bool(int(ctx.status()["CapEff"], 16) >> abi.CAP_SYS_TIME & 1)


def adjtimex(ctx: SyscallContext) -> None:
    if _has_sys_time(ctx):
        raise OSError(errno.EPERM, "the host's clock is not the sandbox's to set")
    ctx.passthrough()


def clock_adjtime(ctx: SyscallContext) -> None:
    adjtimex(ctx)


def settimeofday(ctx: SyscallContext) -> None:
    tv_addr, tz_addr = ctx.args[0], ctx.args[1]
    tv = None
    if tv_addr:
        tv = struct.unpack("qq", ctx.read(tv_addr, 16))
        if not 0 <= tv[1] < 1_000_000:  # (so before the timezone is copied)
            raise OSError(errno.EINVAL, "bad microseconds")
    tz = struct.unpack("ii", ctx.read(tz_addr, 8)) if tz_addr else None
    if tv is not None and not 0 <= tv[0] < _SETTOD_SEC_MAX:
        raise OSError(errno.EINVAL, "a time the clock cannot hold")
    if not _has_sys_time(ctx):
        raise OSError(errno.EPERM, "needs abi.CAP_SYS_TIME")
    if tz is not None and not -15 * 60 <= tz[0] <= 15 * 60:
        raise OSError(errno.EINVAL, "timezone beyond 15 hours")
    if tv is not None or tz is not None:
        raise OSError(errno.EPERM, "the host's clock is not the sandbox's to set")
    ctx.reply(0)
