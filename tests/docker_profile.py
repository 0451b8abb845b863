"""Facts from Docker's default seccomp profile, the floor runsc-py's passthrough list must
never go below. Read by hand from moby's profiles/seccomp/default.json as vendored in
moby/moby at docker-v29.7.2-150 (github.com/moby/profiles/seccomp v0.2.3); only what
applies on x86_64. Tests have no network, so the facts are data here. Docker answers
EPERM (the profile's defaultErrnoRet 1) for everything it does not allow."""
from __future__ import annotations

import errno

# Allowed whatever the capabilities and arguments (the profile's first rule).
ALLOWED = set("""
    _llseek _newselect accept accept4 access adjtimex alarm bind brk cachestat capget capset
    chdir chmod chown chown32 clock_adjtime clock_adjtime64 clock_getres clock_getres_time64
    clock_gettime clock_gettime64 clock_nanosleep clock_nanosleep_time64 close close_range
    connect copy_file_range creat dup dup2 dup3 epoll_create epoll_create1 epoll_ctl
    epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old eventfd eventfd2 execve
    execveat exit exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate
    fanotify_mark fchdir fchmod fchmodat fchmodat2 fchown fchown32 fchownat fcntl fcntl64
    fdatasync fgetxattr flistxattr flock fork fremovexattr fsetxattr fstat fstat64 fstatat64
    fstatfs fstatfs64 fsync ftruncate ftruncate64 futex futex_requeue futex_time64
    futex_wait futex_waitv futex_wake futimesat get_robust_list get_thread_area getcpu
    getcwd getdents getdents64 getegid getegid32 geteuid geteuid32 getgid getgid32 getgroups
    getgroups32 getitimer getpeername getpgid getpgrp getpid getppid getpriority getrandom
    getresgid getresgid32 getresuid getresuid32 getrlimit getrusage getsid getsockname
    getsockopt gettid gettimeofday getuid getuid32 getxattr getxattrat inotify_add_watch
    inotify_init inotify_init1 inotify_rm_watch io_cancel io_destroy io_getevents
    io_pgetevents io_pgetevents_time64 io_setup io_submit ioctl ioprio_get ioprio_set ipc
    kill landlock_add_rule landlock_create_ruleset landlock_restrict_self lchown lchown32
    lgetxattr link linkat listen listmount listxattr listxattrat llistxattr lremovexattr
    lseek lsetxattr lstat lstat64 madvise map_shadow_stack membarrier memfd_create
    memfd_secret mincore mkdir mkdirat mknod mknodat mlock mlock2 mlockall mmap mmap2
    mprotect mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedreceive_time64
    mq_timedsend mq_timedsend_time64 mq_unlink mremap mseal msgctl msgget msgrcv msgsnd
    msync munlock munlockall munmap name_to_handle_at nanosleep newfstatat open openat
    openat2 pause pidfd_open pidfd_send_signal pipe pipe2 pkey_alloc pkey_free pkey_mprotect
    poll ppoll ppoll_time64 prctl pread64 preadv preadv2 prlimit64 process_mrelease pselect6
    pselect6_time64 pwrite64 pwritev pwritev2 read readahead readlink readlinkat readv recv
    recvfrom recvmmsg recvmmsg_time64 recvmsg remap_file_pages removexattr removexattrat
    rename renameat renameat2 restart_syscall riscv_hwprobe rmdir rseq rt_sigaction
    rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait
    rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_get_priority_max sched_get_priority_min
    sched_getaffinity sched_getattr sched_getparam sched_getscheduler sched_rr_get_interval
    sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam
    sched_setscheduler sched_yield seccomp select semctl semget semop semtimedop
    semtimedop_time64 send sendfile sendfile64 sendmmsg sendmsg sendto set_robust_list
    set_thread_area set_tid_address setfsgid setfsgid32 setfsuid setfsuid32 setgid setgid32
    setgroups setgroups32 setitimer setpgid setpriority setregid setregid32 setresgid
    setresgid32 setresuid setresuid32 setreuid setreuid32 setrlimit setsid setsockopt setuid
    setuid32 setxattr setxattrat shmat shmctl shmdt shmget shutdown sigaltstack signalfd
    signalfd4 sigprocmask sigreturn socketcall socketpair splice stat stat64 statfs statfs64
    statmount statx symlink symlinkat sync sync_file_range syncfs sysinfo tee tgkill time
    timer_create timer_delete timer_getoverrun timer_gettime timer_gettime64 timer_settime
    timer_settime64 timerfd_create timerfd_gettime timerfd_gettime64 timerfd_settime
    timerfd_settime64 times tkill truncate truncate64 ugetrlimit umask uname unlink unlinkat
    uretprobe utime utimensat utimensat_time64 utimes vfork vmsplice wait4 waitid waitpid
    write writev
""".split())
# x86_64-only rule: arch_prctl and modify_ldt (amd64, x32, x86).
ALLOWED |= {"arch_prctl", "modify_ldt"}
# Allowed on Linux >= 4.8 whatever the capabilities ("minKernel": "4.8").
ALLOWED_SINCE_4_8 = {"process_vm_readv", "process_vm_writev", "ptrace"}

# Allowed only when the container has the capability ("includes": {"caps": [...]}).
CAP_GATED: dict[str, set[str]] = {
    "open_by_handle_at": {"CAP_DAC_READ_SEARCH"},
    **dict.fromkeys("""bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick
        lookup_dcookie lsm_get_self_attr lsm_list_modules lsm_set_self_attr mount
        mount_setattr move_mount open_tree perf_event_open quotactl quotactl_fd setdomainname
        sethostname setns syslog umount umount2 unshare""".split(), {"CAP_SYS_ADMIN"}),
    "reboot": {"CAP_SYS_BOOT"},
    "chroot": {"CAP_SYS_CHROOT"},
    **dict.fromkeys(["delete_module", "init_module", "finit_module"], {"CAP_SYS_MODULE"}),
    "acct": {"CAP_SYS_PACCT"},
    **dict.fromkeys("""kcmp pidfd_getfd process_madvise process_vm_readv process_vm_writev
        ptrace""".split(), {"CAP_SYS_PTRACE"}),
    **dict.fromkeys(["iopl", "ioperm"], {"CAP_SYS_RAWIO"}),
    **dict.fromkeys(["settimeofday", "stime", "clock_settime", "clock_settime64"],
                    {"CAP_SYS_TIME"}),
    "vhangup": {"CAP_SYS_TTY_CONFIG"},
    **dict.fromkeys(["get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"],
                    {"CAP_SYS_NICE"}),
}
CAP_GATED["syslog"] = {"CAP_SYS_ADMIN", "CAP_SYSLOG"}
CAP_GATED["bpf"] = {"CAP_SYS_ADMIN", "CAP_BPF"}
CAP_GATED["perf_event_open"] = {"CAP_SYS_ADMIN", "CAP_PERFMON"}

CLONE_NS_MASK = 0x7E020000  # clone without CAP_SYS_ADMIN: (flags & mask) == 0
PERSONALITIES = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)
MASK64 = (1 << 64) - 1


def allowed(name: str, caps: set[str], args: tuple[int, ...] = (0,) * 6) -> bool:
    """Whether Docker's profile lets the call through for a container with `caps`.
    Argument comparisons are on all 64 bits, as libseccomp makes them."""
    a0 = args[0] & MASK64
    if name == "socket":
        return a0 < 38 or a0 == 39 or a0 > 40
    if name == "personality":
        return a0 in PERSONALITIES
    if name == "clone":
        return "CAP_SYS_ADMIN" in caps or a0 & CLONE_NS_MASK == 0
    if name == "clone3":
        return "CAP_SYS_ADMIN" in caps  # ENOSYS otherwise
    if name in ALLOWED or name in ALLOWED_SINCE_4_8:
        return True
    return bool(CAP_GATED.get(name, set()) & caps)


def oci_seccomp(caps: set[str]) -> dict:
    """The OCI seccomp section Docker writes for a container with `caps` (x86_64): the
    profile with its capability conditions resolved, for runc to apply."""
    rules = [{"names": sorted(ALLOWED | ALLOWED_SINCE_4_8), "action": "SCMP_ACT_ALLOW"}]
    rules += [{"names": ["socket"], "action": "SCMP_ACT_ALLOW",
               "args": [{"index": 0, "value": v, "op": op}]}
              for v, op in ((38, "SCMP_CMP_LT"), (39, "SCMP_CMP_EQ"), (40, "SCMP_CMP_GT"))]
    rules += [{"names": ["personality"], "action": "SCMP_ACT_ALLOW",
               "args": [{"index": 0, "value": v, "op": "SCMP_CMP_EQ"}]} for v in PERSONALITIES]
    gated = sorted(n for n, need in CAP_GATED.items() if need & caps)
    if gated:
        rules.append({"names": gated, "action": "SCMP_ACT_ALLOW"})
    if "CAP_SYS_ADMIN" not in caps:
        rules.append({"names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": [
            {"index": 0, "value": CLONE_NS_MASK, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]})
        rules.append({"names": ["clone3"], "action": "SCMP_ACT_ERRNO",
                      "errnoRet": errno.ENOSYS})
    return {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": errno.EPERM,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": rules}
