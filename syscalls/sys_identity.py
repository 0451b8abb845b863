"""The kernel's identity: uname, hostname and domain name are the sentry's, not the host's."""
from __future__ import annotations

import errno

from syscalls import abi
from syscalls.context import SyscallContext

_UTS_FIELD = 65


def _field(value: str) -> bytes:
    return value.encode()[: _UTS_FIELD - 1].ljust(_UTS_FIELD, b"\0")


def uname(ctx: SyscallContext) -> None:
    k = ctx.kernel
    ctx.write(ctx.args[0], b"".join(_field(v) for v in (
        k.sysname, k.hostname, k.release, k.version, k.machine, k.domainname)))
    ctx.reply(0)


def _set_name(ctx: SyscallContext, attr: str) -> None:
    size = ctx.args[1]  # an int: negative sizes are EINVAL too
    # The kernel's order: the capability, then the size, then the copy (EFAULT).
    if not int(ctx.status()["CapEff"], 16) >> abi.CAP_SYS_ADMIN & 1:
        raise OSError(errno.EPERM, "needs abi.CAP_SYS_ADMIN")
    if not 0 <= size <= _UTS_FIELD - 1:
        raise OSError(errno.EINVAL, "name too long")
    name = ctx.read(ctx.args[0], size) if size else b""
    setattr(ctx.kernel, attr, name.decode("utf-8", "replace"))
    ctx.reply(0)


def sethostname(ctx: SyscallContext) -> None:
    _set_name(ctx, "hostname")


def setdomainname(ctx: SyscallContext) -> None:
    _set_name(ctx, "domainname")
