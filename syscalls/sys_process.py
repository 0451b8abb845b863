"""Process syscalls that name a file: execve and execveat."""
from __future__ import annotations

from syscalls.context import SyscallContext
from syscalls.paths import AT_EMPTY_PATH, AT_FDCWD, at, read_path


def _exec(ctx: SyscallContext, dirfd: int, addr: int, flags: int) -> None:
    if flags & AT_EMPTY_PATH and read_path(ctx, addr) == b"":
        return ctx.passthrough()  # fexecve of a descriptor the sandbox holds
    ctx.kernel.gofer.call("check_exec", ctx.creds(), path=at(ctx, dirfd, addr))
    # The kernel loads the file (and its interpreter) from the workload's own read-only
    # copy of the container tree: it cannot reach anything the gofer would not.
    ctx.passthrough()


def execve(ctx: SyscallContext) -> None:
    _exec(ctx, AT_FDCWD, ctx.args[0], 0)


def execveat(ctx: SyscallContext) -> None:
    _exec(ctx, ctx.args[0], ctx.args[1], ctx.args[4])
