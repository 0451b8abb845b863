"""The sentry confines itself once the sandbox is set up, as gVisor's sentry does: an
empty root of its own, the few capabilities its handlers need, no_new_privs, and a
seccomp allowlist of the host syscalls it makes. What the workload could make a
compromised sentry do is then bounded by this, not by host root.

It forks nothing afterwards (the spawner forks workload processes, sentry/spawner.py), so
none of it reaches the workload. A syscall outside the allowlist traps: faulthandler
writes the Python stack that made it to the sentry's log and the process dies of SIGSYS
at once; nothing runs on with the call skipped.
"""
from __future__ import annotations

import faulthandler
import mmap
import os
import resource
import signal
import socket
import sys
import termios
from typing import TextIO

import pyseccomp

from sentry import console
from syscalls import abi, host

# Each capability the sentry keeps, and why (README.md, "Confinement", lists the same).
CAPS_KEPT = {
    19: "CAP_SYS_PTRACE: pidfd_getfd, process_vm_readv/writev and /proc/TID/{status,"
        "syscall,fd,cwd} of workload processes, whatever user they run as",
    1: "CAP_DAC_OVERRIDE: writing the synthetic /proc skeleton, whose directories belong "
       "to the workload's users and are read-only to their owners; the cgroup's files on "
       "`update`",
    3: "CAP_FOWNER: setting modes and times on skeleton entries the workload's users own",
    0: "CAP_CHOWN: giving /proc/PID entries to the process's user, as Linux shows them",
}

# The host syscalls the sentry makes after set-up: what strace -f -c saw in 112 sentries
# over the test suite (run, lifecycle, proc, isolation, filesystem, fifo, limits, fuzzers,
# security, Docker), and what the paths no test reaches need (below, each with why).
# mmap, mprotect, ioctl, tgkill and socketpair are allowed with argument rules only.
ALLOWED = (
    # memory and signals of the Python runtime; exit_group ends it, restart_syscall and
    # the clocks are what a signal or a clock without a vDSO path brings
    "brk", "munmap", "mremap", "madvise", "futex", "rt_sigaction", "rt_sigprocmask",
    "rt_sigreturn", "restart_syscall", "exit_group", "getpid", "gettid", "geteuid",
    "clock_gettime", "gettimeofday", "clock_nanosleep",
    # the event loop; the control socket, the gofer's and the spawner's sockets
    "epoll_wait", "epoll_ctl", "poll", "read", "write", "lseek", "close", "fcntl",
    "accept4", "recvfrom", "recvmsg", "sendto", "sendmsg", "getsockopt", "getsockname",
    # workload processes: their memory and descriptors
    "process_vm_readv", "process_vm_writev", "pidfd_open", "pidfd_getfd",
    # files: the host's /proc (read), the synthetic /proc skeleton (written through its
    # detached clone), the cgroup's files, the state directory, rendered /proc files
    "openat", "newfstatat", "readlinkat", "readlink", "getdents64", "mkdirat", "unlinkat",
    "symlinkat", "renameat", "fchown", "fchownat", "memfd_create",
    # sysinfo(2) of the workload is answered from the host's, cut to its limits
    "sysinfo",
    # the gofer, the spawner and the watchdog, reaped at the end; how a helper died
    "wait4", "waitid",
)
RULED = ("mmap", "mprotect", "ioctl", "tgkill", "socketpair")
IOCTLS = (
    abi.SECCOMP_IOCTL_NOTIF_RECV, abi.SECCOMP_IOCTL_NOTIF_SEND, abi.SECCOMP_IOCTL_NOTIF_ID_VALID,
    abi.SECCOMP_IOCTL_NOTIF_ADDFD, abi.SECCOMP_IOCTL_NOTIF_SET_FLAGS,
    console.TIOCSPTLCK, console.TIOCGPTPEER, termios.TIOCSWINSZ,
    termios.TCGETS,  # isatty(), which open() asks
    termios.FIONBIO, termios.FIOCLEX, termios.FIONCLEX,  # setblocking, set_inheritable
)


def confine(root_dir: str, visible: list[str], log: TextIO | None,
            platform_syscalls: tuple[str, ...] = ()) -> None:
    """Confine the calling sentry. root_dir: an empty directory to become its root;
    visible: host directories (the container's cgroup) bound at the same paths inside;
    platform_syscalls: what its platform needs besides (ptrace: ptrace(2))."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # dying of SIGSYS dumps no core
    host.prctl(abi.PR_SET_DUMPABLE, 0)
    _empty_root(root_dir, visible)
    _drop_capabilities(set(CAPS_KEPT))
    host.prctl(abi.PR_SET_NO_NEW_PRIVS, 1)
    # chain=True: after the stack is written the default action (death) follows at once.
    faulthandler.register(signal.SIGSYS, file=log or sys.stderr, all_threads=True,
                          chain=True)
    build_filter(os.getpid(), platform_syscalls).load()


def _empty_root(root_dir: str, visible: list[str]) -> None:
    """A mount namespace of its own whose root is an empty, read-only tmpfs holding only
    a procfs (workload processes are read through /proc/PID) and the visible
    directories."""
    host.unshare(abi.CLONE_NEWNS)
    host.mount(None, "/", None, abi.MS_REC | abi.MS_PRIVATE)
    hidden = abi.MS_NOSUID | abi.MS_NODEV | abi.MS_NOEXEC
    host.mount("tmpfs", root_dir, "tmpfs", hidden, "mode=0755,size=64k")
    os.mkdir(os.path.join(root_dir, "proc"))
    host.mount("proc", os.path.join(root_dir, "proc"), "proc", hidden)
    for d in visible:
        inside = os.path.join(root_dir, d.lstrip("/"))
        os.makedirs(inside)
        host.mount(d, inside, None, abi.MS_BIND)
    host.mount(None, root_dir, None,
                abi.MS_REMOUNT | abi.MS_BIND | abi.MS_RDONLY | hidden)
    os.chdir(root_dir)
    host.pivot_root(".", ".")  # the old root is stacked under the new one ...
    host.umount2(".", abi.MNT_DETACH)  # ... and goes
    os.chdir("/")


def _drop_capabilities(keep: set[int]) -> None:
    with open("/proc/sys/kernel/cap_last_cap") as f:
        last = int(f.read())
    for cap in range(last + 1):
        if cap not in keep:
            host.prctl(abi.PR_CAPBSET_DROP, cap)
    host.prctl(abi.PR_CAP_AMBIENT, abi.PR_CAP_AMBIENT_CLEAR_ALL)
    mask = sum(1 << c for c in keep)
    host.capset(mask, mask, 0)


def build_filter(own_pid: int, extra: tuple[str, ...] = ()) -> pyseccomp.SyscallFilter:
    """The sentry's allowlist: everything else traps (see confine)."""
    f = pyseccomp.SyscallFilter(pyseccomp.TRAP)
    f.set_attr(pyseccomp.Attr.ACT_BADARCH, pyseccomp.KILL_PROCESS)
    for name in ALLOWED + extra:
        f.add_rule(pyseccomp.ALLOW, name)
    # Signals only to itself (faulthandler's raise, Python's own): the spawner signals
    # the workload for it.
    f.add_rule(pyseccomp.ALLOW, "tgkill", pyseccomp.Arg(0, pyseccomp.EQ, own_pid))
    # No new executable memory (nothing is loaded after set-up).
    for name in ("mmap", "mprotect"):
        f.add_rule(pyseccomp.ALLOW, name, pyseccomp.Arg(2, pyseccomp.MASKED_EQ, mmap.PROT_EXEC, 0))
    # ioctl: the notification descriptors', a new pty's (exec -t) and Python's own.
    for cmd in IOCTLS:
        f.add_rule(pyseccomp.ALLOW, "ioctl",
                   pyseccomp.Arg(1, pyseccomp.MASKED_EQ, 0xFFFFFFFF, cmd))
    # Socket pairs for new processes (exec); no other socket is made.
    f.add_rule(pyseccomp.ALLOW, "socketpair", pyseccomp.Arg(0, pyseccomp.EQ, socket.AF_UNIX))
    return f
