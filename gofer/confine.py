"""The gofer's confinement after set-up (issue 11; README "Confinement"): the capabilities
its file operations need and no others, and a seccomp allowlist of the host syscalls it
makes, whose default action kills it (SIGSYS; the kernel logs an audit record, type=1326).

Together with its own PID namespace (it is alone there), its own empty network namespace,
a root that is the container tree and no_new_privs (gofer.server.run), this is what is
left to a gofer that a hostile request took over.
"""
from __future__ import annotations

import errno
import os

import pyseccomp

from syscalls import abi, host

# Each capability the gofer keeps, and why. A request runs with the calling workload
# thread's effective capabilities, intersected with these (Gofer._set_creds).
CAPABILITIES: dict[int, str] = {
    abi.CAP_CHOWN: "chown(2) for a caller that has it",
    abi.CAP_DAC_OVERRIDE: "file permission checks bypassed for a caller that has it",
    abi.CAP_DAC_READ_SEARCH: "likewise for reading and searching directories; and "
                               "linkat(AT_EMPTY_PATH), with which link(2) is served",
    abi.CAP_FOWNER: "chmod, utimes, O_NOATIME, sticky directories on files the caller "
                      "does not own, for a caller that has it",
    abi.CAP_FSETID: "set-group-ID kept on chmod by a caller outside the group",
    abi.CAP_SETGID: "setfsgid and setgroups: each request runs as its caller's groups",
    abi.CAP_SETUID: "setfsuid: each request runs as its caller's fsuid",
    abi.CAP_SETFCAP: "security.capability (setcap) for a caller that has it",
}
KEEP_MASK = sum(1 << cap for cap in CAPABILITIES)

# The host syscalls the gofer makes once serving (x86_64), and what for: measured with
# strace -f -c on every gofer of the tests that drive it (test_filesystem, test_fifo,
# test_proc, test_isolation, test_fuzz_syscalls, tests/security) and read off the code
# (operations those tests do not reach: fstatfs, fchmodat2, ftruncate).
SYSCALLS: dict[str, str] = {
    # Python's runtime and glibc
    "mmap": "memory (never executable)", "mprotect": "memory (never executable)",
    "munmap": "memory", "madvise": "memory", "brk": "malloc", "mremap": "realloc",
    "futex": "locks", "rt_sigaction": "signals", "rt_sigprocmask": "signals",
    "rt_sigreturn": "the cancel signal's handler", "restart_syscall": "a restarted wait",
    "getpid": "pthread_kill", "gettid": "a new thread's id",
    "clone": "a FIFO open's waiting thread (threads only)",
    "clone3": "answered ENOSYS, for glibc to fall back to clone",
    "set_robust_list": "a new thread", "rseq": "a new thread",
    "exit": "a thread's end", "exit_group": "the gofer's end",
    "tgkill": "cancelling a waiting open: its own thread group only",
    # the file operations
    "openat": "reopening its own descriptors through its /proc/self/fd",
    "openat2": "every path lookup (RESOLVE_IN_ROOT)", "close": "descriptors",
    "fcntl": "F_DUPFD_CLOEXEC, F_GETFL, F_SETFL", "newfstatat": "stat, fstat",
    "statx": "statx", "fstatfs": "statfs", "faccessat2": "access checks",
    "readlinkat": "readlink", "mkdirat": "mkdir", "mknodat": "mknod",
    "symlinkat": "symlink", "unlinkat": "unlink, rmdir", "renameat2": "rename",
    "linkat": "link", "fchmodat2": "chmod", "fchownat": "chown", "utimensat": "utimes",
    "ftruncate": "truncate",
    "bind": "a workload's AF_UNIX socket bound to a path, as its caller",
    "chdir": "the caller's cwd, for a relative socket path (and back to /)",
    "getxattrat": "getxattr", "setxattrat": "setxattr", "listxattrat": "listxattr",
    "removexattrat": "removexattr",
    # the caller's credentials, per request
    "umask": "its umask", "setfsuid": "its fsuid", "setfsgid": "its fsgid",
    "setgroups": "its groups", "capget": "the gofer's own (once)",
    "capset": "its effective capabilities",
    # the sentry's socket and the readiness pipe
    "recvmsg": "requests", "sendto": "answers", "sendmsg": "answers with a descriptor",
    "write": "readiness, once",
}

# Never allowed, whatever the list above says (checked when the filter is built): they
# would reach outside the gofer. Signals go only to its own threads (tgkill, arg rule).
DENIED = ("kill", "tkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "pidfd_send_signal",
          "pidfd_open", "pidfd_getfd", "ptrace", "process_vm_readv", "process_vm_writev",
          "process_madvise", "kcmp", "execve", "execveat", "fork", "vfork", "mount",
          "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen", "fsmount",
          "fsconfig", "fspick", "mount_setattr", "unshare", "setns", "setuid", "setgid",
          "setreuid", "setregid", "setresuid", "setresgid", "prctl", "seccomp", "bpf",
          "perf_event_open", "socket", "connect", "keyctl", "add_key",
          "request_key", "init_module", "finit_module", "delete_module", "kexec_load",
          "reboot", "swapon", "open_by_handle_at", "name_to_handle_at", "userfaultfd",
          "io_uring_setup")

# Newer than the libseccomp this builds with (it knows them by number only).
_NUMBERS = {"setxattrat": abi.NR_SETXATTRAT, "getxattrat": abi.NR_GETXATTRAT,
            "listxattrat": abi.NR_LISTXATTRAT, "removexattrat": abi.NR_REMOVEXATTRAT}
_CLONE_NEW_ANY = abi.CLONE_NEW_ANY | abi.CLONE_NEWTIME
_PROT_EXEC = 0x4


def build_filter() -> pyseccomp.SyscallFilter:
    """The allowlist for this process (its pid is what tgkill may name)."""
    if set(SYSCALLS) & set(DENIED):
        raise ValueError(f"denied yet listed: {set(SYSCALLS) & set(DENIED)}")
    f = pyseccomp.SyscallFilter(pyseccomp.KILL_PROCESS)
    f.set_attr(pyseccomp.Attr.CTL_NNP, 1)
    f.set_attr(pyseccomp.Attr.ACT_BADARCH, pyseccomp.KILL_PROCESS)
    for name in SYSCALLS:
        if name == "clone":
            # Threads only, in no new namespace: never a new process.
            f.add_rule(pyseccomp.ALLOW, name, pyseccomp.Arg(
                0, pyseccomp.MASKED_EQ, abi.CLONE_THREAD | _CLONE_NEW_ANY, abi.CLONE_THREAD))
        elif name == "clone3":
            # Its flags are in memory the filter cannot read: ENOSYS, and glibc falls
            # back to clone, whose flags it can.
            f.add_rule(pyseccomp.ERRNO(errno.ENOSYS), name)
        elif name in ("mmap", "mprotect"):
            # No new executable memory: a take-over cannot load code of its own.
            f.add_rule(pyseccomp.ALLOW, name,
                       pyseccomp.Arg(2, pyseccomp.MASKED_EQ, _PROT_EXEC, 0))
        elif name == "tgkill":
            f.add_rule(pyseccomp.ALLOW, name, pyseccomp.Arg(0, pyseccomp.EQ, os.getpid()))
        else:
            f.add_rule(pyseccomp.ALLOW, _NUMBERS.get(name, name))
    return f


def apply() -> None:
    """Drop to CAPABILITIES and load the filter (one thread: both are per thread, and
    the threads started later inherit them)."""
    host.drop_capabilities(KEEP_MASK)
    build_filter().load()
