"""The syscall table: the single source of truth for what the sandbox passes through,
emulates or denies (in the spirit of gVisor's linux64.go).

The seccomp filter, the `runsc-py syscalls` listing and the docs are generated from
TABLE. Names come from python-ptrace (0..440) and libseccomp (newer numbers).
"""
from __future__ import annotations

import enum
import errno
from collections.abc import Callable
from dataclasses import dataclass

from ptrace.syscall.linux import x86_64 as _ptrace_names

from syscalls import abi, sys_file, sys_identity, sys_process, sys_socket, sys_sysinfo, sys_time
from syscalls.argcheck import CHECKS
from syscalls.argtypes import ARG_TYPES


class Kind(enum.Enum):
    PASSTHROUGH = "passthrough"
    EMULATE = "emulate"
    DENY = "deny"


@dataclass(frozen=True)
class ArgRule:
    """A passthrough syscall is refused with `errno` when its argument `arg`, masked with
    `mask`, matches: op "in" (equals one of `values`), "any_bit" (has any bit of mask set)
    or "not_in" (equals none of `values`). `reason` says why (listed by `runsc-py syscalls`).
    `when` (arg, mask, value), if given, limits the rule to calls whose other argument
    `arg`, masked, equals `value` (ptrace's data is a flag word for one request and a
    pointer for others)."""
    arg: int
    mask: int
    op: str
    values: tuple[int, ...]
    errno: int
    reason: str
    when: tuple[int, int, int] | None = None


@dataclass(frozen=True)
class CapGate:
    """Allowed only when `cap` is in the process's bounding set (as Docker's profile
    decides by the container's capabilities); refused with EPERM otherwise."""
    cap: int
    reason: str


@dataclass(frozen=True)
class Syscall:
    nr: int
    name: str
    kind: Kind
    handler: Callable | None = None
    errno: int = 0
    arg_rules: tuple[ArgRule, ...] = ()
    cap_gate: CapGate | None = None
    reason: str = ""


TIOCSTI = 0x5412  # pushes input into a terminal: on the caller's tty it would reach the host
AF_KCM, AF_VSOCK = 38, 40
# personality(2) values Docker's profile lets through: PER_LINUX, PER_LINUX32 (0x8),
# UNAME26 (0x20000), both, and 0xffffffff (the query that changes nothing).
PERSONALITY_ALLOWED = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)
_ALL = 0xFFFFFFFFFFFFFFFF

# Safe on the host kernel as they are: they act on memory, descriptors the sandbox
# already holds, its own namespaces (pid, ipc, uts, net) or its own credentials.
# fchdir acts on a descriptor the sandbox holds; execve and chdir are resolved natively too
# (see sys_process.py: the sentry only points /proc/self at the caller first), and so is
# inotify_add_watch: its walk, in the workload's read-only copy of exactly the container
# tree the gofer serves, reaches nothing the gofer would not, with the kernel's own read
# permission check; the copy shares the tree's inodes, so a watch sees the gofer's changes.
PASSTHROUGH = """
read write close poll lseek mmap mprotect munmap brk rt_sigaction rt_sigprocmask
rt_sigreturn ioctl pread64 pwrite64 readv writev pipe select sched_yield mremap msync mincore
madvise shmget shmat shmctl dup dup2 pause nanosleep getitimer alarm setitimer getpid sendfile
socket connect accept sendto recvfrom sendmsg recvmsg shutdown listen getsockname
getpeername socketpair setsockopt getsockopt clone fork vfork exit wait4 kill semget semop
semctl shmdt msgget msgsnd msgrcv msgctl fcntl flock fsync fdatasync ftruncate getdents getcwd
fchmod fchown umask gettimeofday getrlimit getrusage times getuid getgid setuid setgid
geteuid getegid setpgid getppid getpgrp setsid setreuid setregid getgroups setgroups setresuid
getresuid setresgid getresgid getpgid setfsuid setfsgid getsid capget capset rt_sigpending
rt_sigtimedwait rt_sigqueueinfo rt_sigsuspend sigaltstack personality fstatfs getpriority
setpriority sched_setparam sched_getparam sched_setscheduler sched_getscheduler
sched_get_priority_max sched_get_priority_min sched_rr_get_interval mlock munlock mlockall
munlockall prctl arch_prctl setrlimit sync gettid readahead fsetxattr fgetxattr flistxattr
fremovexattr tkill time futex sched_setaffinity set_thread_area io_setup
io_destroy io_getevents io_submit io_cancel get_thread_area epoll_create remap_file_pages
getdents64 set_tid_address restart_syscall semtimedop fadvise64 timer_create timer_settime
timer_gettime timer_getoverrun timer_delete clock_gettime clock_getres clock_nanosleep
exit_group epoll_wait epoll_ctl tgkill mbind set_mempolicy get_mempolicy mq_open mq_unlink
mq_timedsend mq_timedreceive mq_notify mq_getsetattr waitid ioprio_set ioprio_get inotify_init
inotify_rm_watch pselect6 ppoll set_robust_list get_robust_list splice tee
sync_file_range vmsplice epoll_pwait signalfd timerfd eventfd fallocate
timerfd_settime timerfd_gettime accept4 signalfd4 eventfd2 epoll_create1 dup3 pipe2
inotify_init1 preadv pwritev rt_tgsigqueueinfo recvmmsg prlimit64 syncfs sendmmsg getcpu
ptrace process_vm_readv process_vm_writev kcmp sched_setattr sched_getattr seccomp getrandom
memfd_create membarrier mlock2 copy_file_range preadv2 pwritev2 pkey_mprotect pkey_alloc
pkey_free io_pgetevents rseq pidfd_send_signal pidfd_open close_range pidfd_getfd
process_madvise epoll_pwait2 landlock_create_ruleset landlock_add_rule landlock_restrict_self
memfd_secret process_mrelease futex_waitv set_mempolicy_home_node cachestat map_shadow_stack
futex_wake futex_wait futex_requeue unshare
fchdir
inotify_add_watch
""".split()

# The sentry decides: every path-based call goes to the gofer; the kernel identity is virtual.
EMULATE: dict[str, Callable] = {
    "open": sys_file.open_, "openat": sys_file.openat, "openat2": sys_file.openat2,
    "creat": sys_file.creat,
    "stat": sys_file.stat, "lstat": sys_file.lstat, "newfstatat": sys_file.newfstatat,
    "fstat": sys_file.fstat,  # emulated for the device number (glibc's fstat is newfstatat)
    "statx": sys_file.statx,
    "access": sys_file.access, "faccessat": sys_file.faccessat,
    "faccessat2": sys_file.faccessat2,
    "readlink": sys_file.readlink, "readlinkat": sys_file.readlinkat,
    "mkdir": sys_file.mkdir, "mkdirat": sys_file.mkdirat,
    "unlink": sys_file.unlink, "unlinkat": sys_file.unlinkat, "rmdir": sys_file.rmdir,
    "rename": sys_file.rename, "renameat": sys_file.renameat, "renameat2": sys_file.renameat2,
    "link": sys_file.link, "linkat": sys_file.linkat,
    "symlink": sys_file.symlink, "symlinkat": sys_file.symlinkat,
    "chmod": sys_file.chmod, "fchmodat": sys_file.fchmodat, "fchmodat2": sys_file.fchmodat2,
    "chown": sys_file.chown, "lchown": sys_file.lchown, "fchownat": sys_file.fchownat,
    "utime": sys_file.utime, "utimes": sys_file.utimes, "futimesat": sys_file.futimesat,
    "utimensat": sys_file.utimensat,
    "truncate": sys_file.truncate,
    "mknod": sys_file.mknod, "mknodat": sys_file.mknodat,
    "statfs": sys_file.statfs,
    **{name: getattr(sys_file, name) for name in """getxattr lgetxattr setxattr lsetxattr
        listxattr llistxattr removexattr lremovexattr""".split()},
    "execve": sys_process.execve, "execveat": sys_process.execveat,
    "chdir": sys_process.chdir,
    "chroot": sys_process.chroot,  # the kernel's; the sentry notes that roots may differ
    "bind": sys_socket.bind,  # AF_UNIX paths: the socket file is made by the gofer
    "uname": sys_identity.uname, "sethostname": sys_identity.sethostname,
    "setdomainname": sys_identity.setdomainname,
    "sysinfo": sys_sysinfo.sysinfo, "sched_getaffinity": sys_sysinfo.sched_getaffinity,
    "sysfs": sys_sysinfo.sysfs,
    # Reads of the clock's state and Linux's argument checks; no change is ever made.
    "adjtimex": sys_time.adjtimex, "clock_adjtime": sys_time.clock_adjtime,
    "settimeofday": sys_time.settimeofday,
}

# Refused as gVisor refuses: EPERM for what a container must never do, ENOSYS for what the
# sandbox does not support. Every number not named anywhere is ENOSYS too.
DENY: dict[str, int] = {
    **dict.fromkeys("""mount umount2 pivot_root swapon swapoff reboot kexec_load
        kexec_file_load init_module finit_module delete_module create_module iopl ioperm
        acct clock_settime bpf perf_event_open keyctl
        add_key request_key syslog vhangup quotactl quotactl_fd setns
        open_by_handle_at fanotify_init fanotify_mark userfaultfd open_tree move_mount
        fsopen fsconfig fsmount fspick mount_setattr lookup_dcookie modify_ldt
        _sysctl nfsservctl migrate_pages move_pages""".split(), errno.EPERM),
    **dict.fromkeys("""uselib ustat get_kernel_syms query_module getpmsg putpmsg
        afs_syscall tuxcall security vserver epoll_ctl_old epoll_wait_old io_uring_setup
        io_uring_enter io_uring_register clone3""".split(), errno.ENOSYS),
    "name_to_handle_at": errno.EOPNOTSUPP,
}

# Argument rules for passthrough calls (compiled into the filter; see sentry/platform/
# seccomp.py). Docker's default profile (moby/profiles seccomp v0.2.3) is the floor: each
# rule here is at least as strict as Docker's, stricter where noted.
ARG_RULES: dict[str, tuple[ArgRule, ...]] = {
    "ioctl": (ArgRule(1, 0xFFFFFFFF, "in", (TIOCSTI,), errno.EPERM,
                      "TIOCSTI fakes terminal input; on an inherited tty it reaches the "
                      "host's shell (Docker allows it)"),),
    "clone": (ArgRule(0, abi.CLONE_NEW_ANY, "any_bit", (), errno.EPERM,
                      "new namespaces would let the workload reshape what it sees (Docker "
                      "refuses them too, but allows them with abi.CAP_SYS_ADMIN)"),),
    # unshare(0), CLONE_FS, CLONE_FILES, CLONE_SYSVSEM (and CLONE_THREAD, _SIGHAND, _VM in
    # a single-threaded process) need no privilege on Linux and change only the caller's
    # own state; the sentry reads cwd, root and descriptors per thread, so they hold.
    # Docker refuses unshare entirely without abi.CAP_SYS_ADMIN: looser here, as Linux is.
    "unshare": (ArgRule(0, abi.CLONE_NEW_ANY | abi.CLONE_NEWTIME, "any_bit", (), errno.EPERM,
                        "new namespaces would let the workload reshape what it sees "
                        "(Docker refuses unshare without abi.CAP_SYS_ADMIN; Linux allows "
                        "the other flags unprivileged)"),),
    # The family is an int: only its low 32 bits reach the kernel, so compare those
    # (Docker's LT/EQ/GT compare all 64 bits; 0x1_0000_0028 passes them as AF_VSOCK).
    "socket": (ArgRule(0, 0xFFFFFFFF, "in", (AF_KCM, AF_VSOCK), errno.EPERM,
                       "AF_VSOCK talks to the hypervisor and other VMs, outside any network "
                       "namespace; AF_KCM is rarely used kernel surface (Docker refuses "
                       "both)"),),
    "personality": (ArgRule(0, 0xFFFFFFFFFFFFFFFF, "not_in", PERSONALITY_ALLOWED, errno.EPERM,
                            "other personalities (READ_IMPLIES_EXEC, ADDR_NO_RANDOMIZE, "
                            "ADDR_COMPAT_LAYOUT...) weaken exploit mitigations (Docker "
                            "allows the same five values)"),),
    # ptrace between the sandbox's own processes is Linux's (README, Security: "ptrace
    # inside the sandbox"): since Linux 4.8 seccomp runs after the syscall-entry stop, so
    # a tracer's rewritten syscall number and arguments meet the tracee's filter. What
    # would switch the filter off or show it is refused, whatever the capabilities.
    "ptrace": (
        ArgRule(3, abi.PTRACE_O_SUSPEND_SECCOMP, "any_bit", (), errno.EPERM,
                "abi.PTRACE_SETOPTIONS with abi.PTRACE_O_SUSPEND_SECCOMP: the tracee's syscalls "
                "would skip its filter (Linux refuses it to a tracer under seccomp, as "
                "every workload process is; refused here too, with abi.CAP_SYS_ADMIN)",
                when=(0, _ALL, abi.PTRACE_SETOPTIONS)),
        ArgRule(3, abi.PTRACE_O_SUSPEND_SECCOMP, "any_bit", (), errno.EPERM,
                "abi.PTRACE_SEIZE with abi.PTRACE_O_SUSPEND_SECCOMP (as abi.PTRACE_SETOPTIONS)",
                when=(0, _ALL, abi.PTRACE_SEIZE)),
        ArgRule(0, _ALL, "in", (abi.PTRACE_SECCOMP_GET_FILTER, abi.PTRACE_SECCOMP_GET_METADATA),
                errno.EACCES,
                "abi.PTRACE_SECCOMP_GET_FILTER/GET_METADATA would show the filter's program; "
                "Linux answers EACCES to a tracer under seccomp, as here"),
    ),
}

# Calls allowed only with a capability in the process's bounding set, as in Docker's
# profile; without it they fail with EPERM (Docker's default errno) before reaching the
# kernel or the sentry.
_PTRACE_ACCESS = ("acts on another process with ptrace access mode, which Linux grants "
                  "to the same user without abi.CAP_SYS_PTRACE")
_NUMA = "NUMA memory policy of the host's nodes (Docker: abi.CAP_SYS_NICE)"
CAP_GATES: dict[str, CapGate] = {
    "kcmp": CapGate(abi.CAP_SYS_PTRACE, "compares another process's kernel objects: "
                    + _PTRACE_ACCESS + " (Docker: abi.CAP_SYS_PTRACE)"),
    "pidfd_getfd": CapGate(abi.CAP_SYS_PTRACE, "takes another process's descriptors: "
                           + _PTRACE_ACCESS + " (Docker: abi.CAP_SYS_PTRACE)"),
    "process_madvise": CapGate(abi.CAP_SYS_PTRACE, "advises on another process's memory: "
                               + _PTRACE_ACCESS + " (Docker: abi.CAP_SYS_PTRACE)"),
    # Not process_vm_readv/writev: ptrace itself is let through (PEEKDATA/POKEDATA do
    # what they do), so a gate would protect nothing; Docker allows them on Linux >= 4.8.
    # Like ptrace they reach only the caller's own lineage (its Landlock domain).
    "get_mempolicy": CapGate(abi.CAP_SYS_NICE, _NUMA),
    "mbind": CapGate(abi.CAP_SYS_NICE, _NUMA),
    "set_mempolicy": CapGate(abi.CAP_SYS_NICE, _NUMA),
    "set_mempolicy_home_node": CapGate(abi.CAP_SYS_NICE, _NUMA),
    # Emulated: the sentry checks abi.CAP_SYS_ADMIN in the effective set as Linux does; the
    # filter refuses first when the bounding set lacks it, as Docker's profile does.
    "chroot": CapGate(abi.CAP_SYS_CHROOT, "changes the caller's root inside the container "
                      "(Docker: abi.CAP_SYS_CHROOT; the kernel checks it too)"),
    "sethostname": CapGate(abi.CAP_SYS_ADMIN, "renames the sandbox (Docker: abi.CAP_SYS_ADMIN)"),
    "setdomainname": CapGate(abi.CAP_SYS_ADMIN, "renames the sandbox (Docker: abi.CAP_SYS_ADMIN)"),
}

# Why a call is denied where Docker's profile would allow it in some case.
DENY_REASONS: dict[str, str] = {
    "migrate_pages": "moves another process's pages between NUMA nodes (Docker refuses it)",
    "move_pages": "moves pages between NUMA nodes, also another process's (Docker refuses it)",
    "clone3": "its flags are in memory, out of a filter's reach (Docker: ENOSYS too)",
}


def _names() -> dict[int, str]:
    import pyseccomp

    names = {nr: n for nr, n in _ptrace_names.SYSCALL_NAMES.items() if nr < 512}
    arch = pyseccomp.system_arch()
    for nr in range(max(names) + 1, 512):
        try:
            names[nr] = pyseccomp.resolve_syscall(arch, nr).decode()
        except Exception:  # libseccomp does not know this number: default (ENOSYS) applies
            pass
    return names


def _build() -> dict[int, Syscall]:
    names = _names()
    known = set(names.values())
    for group in (PASSTHROUGH, EMULATE, DENY, ARG_RULES, CAP_GATES, DENY_REASONS):
        unknown = set(group) - known
        assert not unknown, f"syscall table names unknown syscalls: {unknown}"
    # Rules only make sense on calls that are let through.
    assert not set(ARG_RULES) - set(PASSTHROUGH), "argument rules on a non-passthrough call"
    assert not set(CAP_GATES) - set(PASSTHROUGH) - set(EMULATE), "gate on a denied call"
    assert not set(DENY_REASONS) & (set(PASSTHROUGH) | set(EMULATE))
    untyped = set(EMULATE) - set(ARG_TYPES)
    assert not untyped, f"emulated syscalls without argument types: {untyped}"
    table = {}
    for nr, name in sorted(names.items()):
        if name in EMULATE:
            table[nr] = Syscall(nr, name, Kind.EMULATE, handler=EMULATE[name],
                                cap_gate=CAP_GATES.get(name))
        elif name in PASSTHROUGH:
            table[nr] = Syscall(nr, name, Kind.PASSTHROUGH, arg_rules=ARG_RULES.get(name, ()),
                                cap_gate=CAP_GATES.get(name))
        else:
            table[nr] = Syscall(nr, name, Kind.DENY, errno=DENY.get(name, errno.ENOSYS),
                                reason=DENY_REASONS.get(name, ""))
    return table


TABLE: dict[int, Syscall] = _build()
DEFAULT_ERRNO = errno.ENOSYS
HANDLERS: dict[int, Callable] = {s.nr: s.handler for s in TABLE.values() if s.handler}
# The C types of each emulated syscall's arguments (syscalls.argtypes), by number.
HANDLER_ARG_TYPES: dict[int, str] = {s.nr: ARG_TYPES[s.name] for s in TABLE.values()
                                     if s.handler}
# The kernel's argument checks that run before the handler (syscalls.argcheck), by number.
HANDLER_CHECKS: dict[int, Callable] = {s.nr: CHECKS[s.name] for s in TABLE.values()
                                       if s.name in CHECKS}
