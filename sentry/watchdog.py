"""Fail closed: the workload never runs without its sentry, gofer and spawner.

A small process, forked by the sentry outside the sandbox's PID namespace (so no workload
process can signal it), waits on pidfds of the sentry, the gofer, the spawner and the
workload's init. When one of the first three goes, however it goes (SIGKILL included), it
kills the init, and the kernel then kills every process of the init's PID namespace, the
exec'd ones too. A parent-death signal alone is not enough: the kernel clears it when a
process changes its credentials (gosu and su-exec entrypoints do), and the gofer's
per-request setfsuid clears its own.
"""
from __future__ import annotations

import os
import select
import signal

from syscalls import abi, host


def start(helper_pids: list[int]) -> tuple[int, int]:
    """Fork the watchdog, which watches the sentry and its helpers (the gofer, the
    spawner); (its pid, the pipe end to send the init's pid on, see arm)."""
    sentry_pid = os.getpid()
    init_r, init_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            _run(sentry_pid, helper_pids, init_r)
        finally:
            os._exit(0)
    os.close(init_r)
    return pid, init_w


def arm(init_w: int, init_pid: int) -> None:
    """Tell the watchdog which process to kill (until then the init's own parent-death
    signal, set before any credential change, covers it)."""
    try:
        os.write(init_w, str(init_pid).encode())
    finally:
        os.close(init_w)


def _run(sentry_pid: int, helper_pids: list[int], init_r: int) -> None:
    for sig in range(1, signal.NSIG):  # the sentry's handlers forward signals: not here
        if sig not in (signal.SIGKILL, signal.SIGSTOP):
            try:
                signal.signal(sig, signal.SIG_IGN if sig == signal.SIGINT else signal.SIG_DFL)
            except (OSError, ValueError):
                pass
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):  # never hold the caller's stdio (a shim reads it to EOF)
        os.dup2(null, fd)
    # Nothing else of the sentry's: above all not its end of the gofer's socket.
    os.closerange(3, init_r)
    os.closerange(init_r + 1, 1 << 16)
    host.prctl(abi.PR_SET_PDEATHSIG, signal.SIGKILL)  # only until the pidfds are open
    try:
        watched = [os.pidfd_open(p) for p in (sentry_pid, *helper_pids)]
    except OSError:
        return  # one of them is gone already: create fails and the sentry cleans up
    host.prctl(abi.PR_SET_PDEATHSIG, 0)  # from here on, the watchdog outlives them
    if os.getppid() != sentry_pid:
        return
    raw = os.read(init_r, 32)
    os.close(init_r)
    if not raw:
        return  # the sentry went before starting the init (which has its own PDEATHSIG)
    try:
        init = os.pidfd_open(int(raw))
    except OSError:
        return
    poller = select.poll()
    for fd in (*watched, init):
        poller.register(fd, select.POLLIN)
    ready = {fd for fd, _ in poller.poll()}
    if init not in ready:  # the sentry or a helper died first: end the whole sandbox
        try:
            signal.pidfd_send_signal(init, signal.SIGKILL)
        except OSError:
            pass
