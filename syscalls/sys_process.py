"""Calls the kernel resolves natively: execve, execveat, chdir and chroot.

The workload's mount namespace is a read-only copy of exactly the container tree the gofer
serves, rooted at the container root, so the kernel's own walk (with its own permission
checks on the caller's credentials) reaches nothing the gofer would not. The sentry makes
no decision about these calls: checking the path and then letting the kernel read it
again would be a check-then-CONTINUE race. Its only part is /proc, whose self and
thread-self links it points at the caller before the kernel follows them
(exec of /proc/self/exe, cd /proc/self).

chroot is the kernel's too (CAP_SYS_CHROOT, search permission, the root tracked per
process and inherited across fork; execve then walks from it). It narrows: the new root is
a directory the caller reaches in its copy of the container tree. The sentry only notes
that roots may now differ, so that it reads the caller's root (/proc/TID/root) for the
paths it resolves itself from then on (syscalls/paths.py).
"""
from __future__ import annotations

from syscalls.context import SyscallContext
from syscalls.paths import AT_FDCWD, joined, norm, read_path

_STDIO = {b"/dev/stdin": b"0", b"/dev/stdout": b"1", b"/dev/stderr": b"2"}


def _native(ctx: SyscallContext, dirfd: int, addr: int) -> None:
    procfs = getattr(ctx.kernel, "procfs", None)
    if procfs is not None:
        try:
            path = joined(ctx, dirfd, read_path(ctx, addr))
        except OSError:
            path = b""  # the kernel gives the caller its own errno for a bad path
        lexical = norm(ctx, path) if path else b""
        # /dev/fd and /dev/std* are links into /proc/self/fd, which the kernel follows.
        if lexical == b"/dev/fd" or lexical.startswith(b"/dev/fd/"):
            lexical = b"/proc/self/fd" + lexical[len(b"/dev/fd"):]
        elif lexical in _STDIO:
            lexical = b"/proc/self/fd/" + _STDIO[lexical]
        if lexical == b"/proc" or lexical.startswith(b"/proc/"):
            procfs.point_self(ctx)
            if lexical.count(b"/") > 3:
                # An entry inside a process's directory (/proc/self/fd/3, as fexecve
                # and an fd-relative chdir or chroot name it): brought up to date too;
                # whatever it finds, the kernel answers.
                try:
                    procfs.prepare(ctx, lexical)
                except OSError:
                    pass
            ctx.passthrough()
            # The link is shared by the sandbox: keep it the caller's until the kernel's
            # walk is over, before any other process's request can re-point it.
            procfs.hold_self(ctx.pid, ctx.nr)
            return
    ctx.passthrough()


def execve(ctx: SyscallContext) -> None:
    _native(ctx, AT_FDCWD, ctx.args[0])


def execveat(ctx: SyscallContext) -> None:
    _native(ctx, ctx.args[0], ctx.args[1])


def chdir(ctx: SyscallContext) -> None:
    _native(ctx, AT_FDCWD, ctx.args[0])


def chroot(ctx: SyscallContext) -> None:
    # Before the kernel changes any root: a path call that follows sees the flag.
    ctx.kernel.chrooted = True
    _native(ctx, AT_FDCWD, ctx.args[0])
