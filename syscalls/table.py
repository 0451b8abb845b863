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

from syscalls import sys_file, sys_identity, sys_process, sys_sysinfo
from syscalls.argcheck import CHECKS
from syscalls.argtypes import ARG_TYPES


class Kind(enum.Enum):
    PASSTHROUGH = "passthrough"
    EMULATE = "emulate"
    DENY = "deny"


@dataclass(frozen=True)
class ArgRule:
    """A passthrough syscall is refused with `errno` when (args[arg] & mask) == value
    (or, with any_bit, when any bit of mask is set)."""
    arg: int
    mask: int
    value: int
    errno: int
    any_bit: bool = False


@dataclass(frozen=True)
class Syscall:
    nr: int
    name: str
    kind: Kind
    handler: Callable | None = None
    errno: int = 0
    arg_rules: tuple[ArgRule, ...] = ()


TIOCSTI = 0x5412  # pushes input into a terminal: on the caller's tty it would reach the host
CLONE_NEW_ANY = (0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000
                 | 0x20000000 | 0x40000000 | 0x00000080)  # NS CGROUP UTS IPC USER PID NET TIME

# Safe on the host kernel as they are: they act on memory, descriptors the sandbox
# already holds, its own namespaces (pid, ipc, uts, net) or its own credentials.
PASSTHROUGH = """
read write close fstat poll lseek mmap mprotect munmap brk rt_sigaction rt_sigprocmask
rt_sigreturn ioctl pread64 pwrite64 readv writev pipe select sched_yield mremap msync mincore
madvise shmget shmat shmctl dup dup2 pause nanosleep getitimer alarm setitimer getpid sendfile
socket connect accept sendto recvfrom sendmsg recvmsg shutdown bind listen getsockname
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
inotify_rm_watch migrate_pages pselect6 ppoll set_robust_list get_robust_list splice tee
sync_file_range vmsplice move_pages epoll_pwait signalfd timerfd eventfd fallocate
timerfd_settime timerfd_gettime accept4 signalfd4 eventfd2 epoll_create1 dup3 pipe2
inotify_init1 preadv pwritev rt_tgsigqueueinfo recvmmsg prlimit64 syncfs sendmmsg getcpu
process_vm_readv process_vm_writev kcmp sched_setattr sched_getattr seccomp getrandom
memfd_create membarrier mlock2 copy_file_range preadv2 pwritev2 pkey_mprotect pkey_alloc
pkey_free io_pgetevents rseq pidfd_send_signal pidfd_open close_range pidfd_getfd
process_madvise epoll_pwait2 landlock_create_ruleset landlock_add_rule landlock_restrict_self
memfd_secret process_mrelease futex_waitv set_mempolicy_home_node cachestat map_shadow_stack
futex_wake futex_wait futex_requeue
""".split()

# The sentry decides: every path-based call goes to the gofer; the kernel identity is virtual.
EMULATE: dict[str, Callable] = {
    "open": sys_file.open_, "openat": sys_file.openat, "openat2": sys_file.openat2,
    "creat": sys_file.creat,
    "stat": sys_file.stat, "lstat": sys_file.lstat, "newfstatat": sys_file.newfstatat,
    "statx": sys_file.statx,
    "access": sys_file.access, "faccessat": sys_file.faccessat,
    "faccessat2": sys_file.faccessat2,
    "readlink": sys_file.readlink, "readlinkat": sys_file.readlinkat,
    "chdir": sys_file.chdir, "fchdir": sys_file.fchdir,
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
    "execve": sys_process.execve, "execveat": sys_process.execveat,
    "uname": sys_identity.uname, "sethostname": sys_identity.sethostname,
    "setdomainname": sys_identity.setdomainname,
    "sysinfo": sys_sysinfo.sysinfo, "sched_getaffinity": sys_sysinfo.sched_getaffinity,
}

# Refused as gVisor refuses: EPERM for what a container must never do, ENOSYS for what the
# sandbox does not support. Every number not named anywhere is ENOSYS too.
DENY: dict[str, int] = {
    **dict.fromkeys("""mount umount2 pivot_root chroot swapon swapoff reboot kexec_load
        kexec_file_load init_module finit_module delete_module create_module iopl ioperm
        acct settimeofday clock_settime adjtimex clock_adjtime bpf perf_event_open keyctl
        add_key request_key ptrace syslog vhangup quotactl quotactl_fd unshare setns
        open_by_handle_at fanotify_init fanotify_mark userfaultfd open_tree move_mount
        fsopen fsconfig fsmount fspick mount_setattr lookup_dcookie modify_ldt
        _sysctl nfsservctl""".split(), errno.EPERM),
    **dict.fromkeys("""uselib ustat sysfs get_kernel_syms query_module getpmsg putpmsg
        afs_syscall tuxcall security vserver epoll_ctl_old epoll_wait_old io_uring_setup
        io_uring_enter io_uring_register clone3""".split(), errno.ENOSYS),
    # Path-based calls not yet routed through the gofer: refused rather than run natively.
    **dict.fromkeys("""setxattr lsetxattr getxattr lgetxattr listxattr llistxattr
        removexattr lremovexattr""".split(), errno.ENOTSUP),
    "inotify_add_watch": errno.ENOSYS,
    "name_to_handle_at": errno.EOPNOTSUPP,
}

ARG_RULES: dict[str, tuple[ArgRule, ...]] = {
    "ioctl": (ArgRule(1, 0xFFFFFFFF, TIOCSTI, errno.EPERM),),
    # New namespaces from inside would let the workload reshape what it sees.
    "clone": (ArgRule(0, CLONE_NEW_ANY, 0, errno.EPERM, any_bit=True),),
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
    for group in (PASSTHROUGH, EMULATE, DENY, ARG_RULES):
        unknown = set(group) - known
        assert not unknown, f"syscall table names unknown syscalls: {unknown}"
    untyped = set(EMULATE) - set(ARG_TYPES)
    assert not untyped, f"emulated syscalls without argument types: {untyped}"
    table = {}
    for nr, name in sorted(names.items()):
        if name in EMULATE:
            table[nr] = Syscall(nr, name, Kind.EMULATE, handler=EMULATE[name])
        elif name in PASSTHROUGH:
            table[nr] = Syscall(nr, name, Kind.PASSTHROUGH, arg_rules=ARG_RULES.get(name, ()))
        else:
            table[nr] = Syscall(nr, name, Kind.DENY, errno=DENY.get(name, errno.ENOSYS))
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
