"""Platforms: how the workload's syscalls reach the sentry and how answers go back.

Every platform implements Platform for one sandbox. The syscall table is compiled into
the workload's filter by one compiler (sentry/platform/seccomp.py build_filter) for
either platform, and every trapped call is answered by one dispatch()
(sentry/platform/dispatch.py): handlers never know which platform runs them.

  seccomp  seccomp user notification: emulated calls arrive on the notification
           descriptor of each process's filter; passthrough calls never leave the kernel.
  ptrace   the sentry traces every workload thread; the filter stops every call it lets
           through (SECCOMP_RET_TRACE), so nothing runs on the host kernel unseen.

The life of a workload process, as the sentry sees it:
  1. the spawner forks it; in the child, child_setup() (before execve) says "attach"
     and waits for "go" when the platform must attach first (ptrace), then loads the
     filter and returns its notification descriptor, which the child sends over;
  2. the sentry calls attach(pid, sock) right after the spawn, then receive(sock) for
     each of the child's set-up messages (serving its calls meanwhile, under ptrace);
  3. add_process(notify_fd) hands the platform the process's notification descriptor;
     from then on the platform's descriptors in the sentry's event loop deliver its calls;
  4. at the end, release(spawner_pid) lets the last processes go (a tracer must reap).
"""
from __future__ import annotations

import abc
import socket
from collections.abc import Callable, Collection

PLATFORMS = ("seccomp", "ptrace")

Watch = Callable[[int, Callable[[int], None]], None]


class Platform(abc.ABC):
    name: str
    # Host syscalls the sentry's own allowlist needs for this platform (sentry/confine.py).
    sentry_syscalls: tuple[str, ...] = ()

    def __init__(self, kernel: object, watch: Watch, unwatch: Callable[[int], None],
                 tracer: object | None = None) -> None:
        self.kernel, self.tracer = kernel, tracer
        self.watch, self.unwatch = watch, unwatch

    def attach(self, pid: int, sock: socket.socket) -> None:  # noqa: B027 (optional)
        """A new workload process, spawned and about to set itself up."""

    def receive(self, sock: socket.socket, fds: int = 0) -> tuple[bytes, list[int]]:
        """The process's next set-up message (and up to fds descriptors)."""
        if fds:
            msg, got, _, _ = socket.recv_fds(sock, 4096, fds)
            return msg, got
        return sock.recv(4096), []

    @abc.abstractmethod
    def add_process(self, notify_fd: int) -> None:
        """The notification descriptor of a new process's filter (the platform owns it)."""

    def release(self, until_pid: int) -> None:  # noqa: B027 (optional)
        """The sandbox ends: let its last processes go until until_pid has exited."""

    def reaped(self, pid: int) -> int | None:
        """The wait status of a child of the sentry this platform reaped, if it did."""
        return None


def create(name: str, kernel: object, watch: Watch, unwatch: Callable[[int], None],
           tracer: object | None = None) -> Platform:
    if name == "ptrace":
        from sentry.platform.ptrace import PtracePlatform

        return PtracePlatform(kernel, watch, unwatch, tracer)
    from sentry.platform.seccomp import SeccompPlatform

    return SeccompPlatform(kernel, watch, unwatch, tracer)


def child_setup(name: str, sock: socket.socket, no_new_privs: bool,
                bounding: Collection[int], killable: bool = True) -> int:
    """In the workload's process, before its execve: what the platform needs of it; the
    notification descriptor of its filter. Under ptrace, the sentry attaches first (a
    traced call with no tracer would fail ENOSYS)."""
    from sentry.platform import seccomp

    marker = None
    if name == "ptrace":
        sock.send(b"attach")
        if sock.recv(16) != b"go":
            raise OSError("the sentry did not attach")
        marker = seccomp.TRACE_MARKER_NR
    return seccomp.install_filter(no_new_privs, bounding, killable, marker)
