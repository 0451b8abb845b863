"""The workload's init, from fork to execve: namespaces, the read-only view of the
container tree, rlimits, the seccomp filter, user and capabilities, then the wait for
`start`. Runs in the child the spawner (sentry/spawner.py) forks inside the sandbox's PID
namespace."""
from __future__ import annotations

import fcntl
import os
import resource
import signal
import socket
import struct
import sys
import termios
import time
from collections.abc import Callable

from sentry import platform as platforms
from sentry.cgroup import is_v2 as cgroup_v2
from sentry.config import ProcessConfig, SandboxConfig
from sentry.platform import seccomp
from syscalls import abi, host

_NS_FLAGS = {"uts": abi.CLONE_NEWUTS}  # IPC: enter_ipc, before the gofer is forked
# The init's namespaces an exec'd process joins (the PID namespace comes with the fork).
JOINED_NAMESPACES = {"uts": abi.CLONE_NEWUTS, "ipc": abi.CLONE_NEWIPC,
                     "time": abi.CLONE_NEWTIME, "mnt": abi.CLONE_NEWNS}


def _mask(caps: list[int]) -> int:
    m = 0
    for c in caps:
        m |= 1 << c
    return m


def _last_cap() -> int:
    with open("/proc/sys/kernel/cap_last_cap") as f:
        return int(f.read())


def reset_signals() -> None:
    """What Python changed (SIGPIPE ignored, SIGINT handled) must not reach the workload."""
    for sig in range(1, signal.NSIG):
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            pass
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def enter_ipc(cfg: SandboxConfig) -> None:
    """The sandbox's IPC namespace (a new one, the spec's, or, left out of the spec, the
    runtime's), entered by the sentry before it forks the gofer: the gofer mounts the
    spec's mqueue filesystem from inside it, so /dev/mqueue lists the queues the
    workload's mq_open (a passthrough syscall) makes; the init inherits it."""
    if "ipc" in cfg.shared_namespaces:
        return
    path = cfg.namespace_paths.get("ipc")
    if not path:
        host.unshare(abi.CLONE_NEWIPC)
        return
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        host.setns(fd, abi.CLONE_NEWIPC)
    finally:
        os.close(fd)


def enter_container(cfg: SandboxConfig, mnt_ns_fd: int) -> None:
    """The init's namespaces: a new uts (or the spec's; IPC is inherited: enter_ipc),
    then a private, read-only
    copy of the gofer's tree (rooted at the container root): the workload loads
    executables from it natively and writes only through the gofer."""
    new = 0
    for ns_type, flag in _NS_FLAGS.items():
        path = cfg.namespace_paths.get(ns_type)
        if ns_type in cfg.shared_namespaces:
            continue  # left out of the spec: the runtime's, as under runc
        if path:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                host.setns(fd, flag)
            finally:
                os.close(fd)
        else:
            new |= flag
    host.unshare(new)
    if "uts" not in cfg.namespace_paths and "uts" not in cfg.shared_namespaces:
        host.sethostname(cfg.hostname)
        if cfg.domainname:
            host.setdomainname(cfg.domainname)
    apply_sysctl(cfg.sysctl)
    host.setns(mnt_ns_fd, abi.CLONE_NEWNS)
    os.close(mnt_ns_fd)
    host.unshare(abi.CLONE_NEWNS)
    host.mount_setattr_readonly("/")


def apply_sysctl(sysctl: dict[str, str]) -> None:
    """linux.sysctl, in the init's own namespaces (its IPC and network ones: the spec
    parser lets only those through), through the host's /proc while it is still there."""
    for key, value in sysctl.items():
        try:
            fd = os.open("/proc/sys/" + key.replace(".", "/"), os.O_WRONLY | os.O_CLOEXEC)
        except OSError as e:
            raise OSError(e.errno, f"sysctl {key}: {e.strerror}") from None
        try:
            os.write(fd, value.encode())
        except OSError as e:
            raise OSError(e.errno, f"sysctl {key}={value}: {e.strerror}") from None
        finally:
            os.close(fd)


def new_time_namespace() -> int:
    """A time namespace for the sentry's children from now on (the workload's init and
    exec'd processes), whose CLOCK_MONOTONIC and CLOCK_BOOTTIME start near 0: uptime in
    the sandbox is the sandbox's, not the host's. The seconds taken off CLOCK_BOOTTIME
    (the sentry, in the host's namespace, adds them back); 0 where the kernel has no time
    namespaces (before 5.6): then the workload sees the host's clocks and the sentry says
    the same."""
    try:
        host.unshare(abi.CLONE_NEWTIME)
    except OSError:
        return 0
    # Whole seconds back: the clocks start between 0 and 1 s and never go negative (the
    # kernel refuses offsets that would make them so).
    mono = int(time.clock_gettime(time.CLOCK_MONOTONIC))
    boot = int(time.clock_gettime(time.CLOCK_BOOTTIME))
    fd = os.open("/proc/self/timens_offsets", os.O_WRONLY | os.O_CLOEXEC)
    try:
        # Before any process is in the namespace: afterwards the kernel refuses offsets.
        os.write(fd, f"{time.CLOCK_MONOTONIC} {-mono} 0\n"
                     f"{time.CLOCK_BOOTTIME} {-boot} 0\n".encode())
    except OSError:
        return 0  # the namespace keeps the host's clocks
    finally:
        os.close(fd)
    return boot


def join_container(ns_fds: dict[int, int]) -> None:
    """An exec'd process's namespaces: the init's (CLONE_NEW* flag -> descriptor)."""
    for flag, fd in ns_fds.items():
        host.setns(fd, flag)
        os.close(fd)


def enter_network(cfg: SandboxConfig) -> None:
    """The sandbox's network namespace: the spec's, a new one with loopback up, or, left
    out of the spec, the runtime's (as under runc). The
    sentry enters it itself, so /proc/PID/ns/net of the container's pid (the sentry, for
    Docker's and containerd's network hooks) is the container's, never the host's."""
    if "network" in cfg.shared_namespaces:
        return  # left out of the spec: the runtime's (docker --network host), as under runc
    path = cfg.namespace_paths.get("network")
    if path:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            host.setns(fd, abi.CLONE_NEWNET)
        finally:
            os.close(fd)
        return
    host.unshare(abi.CLONE_NEWNET)
    _loopback_up()


def _loopback_up() -> None:
    SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifreq = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s, SIOCGIFFLAGS, ifreq))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))


_LANDLOCK_ACCESS_FS_MAKE_BLOCK = 1 << 11


def own_ptrace_domain() -> None:
    """Put this process (and so everything it will fork) in a Landlock domain of its own:
    Linux then refuses ptrace access (ptrace, process_vm_*, pidfd_getfd, kcmp) from it to
    any process outside that domain and its descendants, whatever the capabilities (the
    Landlock check has no CAP_SYS_PTRACE exception). The workload's processes are in
    their own process's domain; an exec'd process doing its set-up as root with every
    capability, before its filter, is in none yet, so no workload process can trace it
    (README, Security: "ptrace inside the sandbox"). The domain restricts nothing else:
    it handles only making block devices, which the workload never does natively (mknod
    is emulated, and refused for devices). Where Landlock is missing, ptrace and the calls
    that ask ptrace access are refused instead (a filter stacked on the main one)."""
    attr = struct.pack("Q", _LANDLOCK_ACCESS_FS_MAKE_BLOCK)
    try:
        fd = host.syscall(abi.NR_LANDLOCK_CREATE_RULESET, attr, len(attr), 0)
    except OSError:
        seccomp.load_no_ptrace_program()
        return
    try:
        host.syscall(abi.NR_LANDLOCK_RESTRICT_SELF, fd, 0)
    finally:
        os.close(fd)


def _set_user_and_caps(proc: ProcessConfig, last_cap: int) -> None:
    caps = proc.capabilities
    bounding = _mask(caps.get("bounding", []))
    for cap in range(last_cap + 1):
        if not bounding >> cap & 1:
            host.prctl(abi.PR_CAPBSET_DROP, cap)
    host.prctl(abi.PR_SET_KEEPCAPS, 1)  # keep permitted caps across the uid change
    os.setgroups(proc.additional_gids)
    os.setresgid(proc.gid, proc.gid, proc.gid)
    os.setresuid(proc.uid, proc.uid, proc.uid)
    host.prctl(abi.PR_SET_KEEPCAPS, 0)
    host.capset(_mask(caps.get("effective", [])), _mask(caps.get("permitted", [])),
            _mask(caps.get("inheritable", [])))
    host.prctl(abi.PR_CAP_AMBIENT, abi.PR_CAP_AMBIENT_CLEAR_ALL)
    for cap in caps.get("ambient", []):
        try:
            host.prctl(abi.PR_CAP_AMBIENT, abi.PR_CAP_AMBIENT_RAISE, cap)
        except OSError:
            pass  # not permitted and inheritable: the kernel refuses, as under runc
    # A uid change clears the parent-death signal: set it again.
    host.prctl(abi.PR_SET_PDEATHSIG, signal.SIGKILL)


def _own_stdio(uid: int, gid: int) -> None:
    """Give the process's user its stdio (pipes, files), as runc does, so that a non-root
    process can reopen them (/dev/stdout, /proc/self/fd/N); /dev/null stays root's."""
    null = os.stat(os.devnull)
    for fd in (0, 1, 2):
        try:
            st = os.fstat(fd)
            if (st.st_rdev, st.st_ino) == (null.st_rdev, null.st_ino) or st.st_uid == uid:
                continue
            os.fchown(fd, uid, gid)
        except OSError:
            pass  # closed, or a file the kernel will not let root chown (as runc, go on)


def resource_name(kind: int) -> str:
    return next((n for n in dir(resource) if n.startswith("RLIMIT_")
                 and getattr(resource, n) == kind), str(kind))


def _close_other_fds(keep: set[int]) -> None:
    """Only stdio reaches the workload, whatever the sentry held when it forked."""
    low = 3
    for fd in sorted(k for k in keep if k >= 3):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, resource.getrlimit(resource.RLIMIT_NOFILE)[0])


def run(proc: ProcessConfig, exe: str, enter: Callable[[], None], sock: socket.socket,
        start_r: int | None, parent_pid: int, stdio: list[int] | None = None,
        platform: str = "seccomp") -> None:
    """Never returns. `enter` puts the process in the container's namespaces; stdio (three
    descriptors) replaces 0, 1 and 2; with start_r it waits for `start` before execve.
    What its platform needs of it comes first (sentry/platform child_setup). Reports "ok"
    with the notification descriptor, then "ready", or "error:..."."""
    try:
        host.prctl(abi.PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != 0 and os.getppid() != parent_pid:
            os._exit(1)
        reset_signals()
        # The sentry's -1000 (forked from it) must not shield the workload: the OOM killer
        # picks from the workload. While the host's /proc is still here; raising is
        # always allowed, a spec's lower value needs the root we still are.
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(proc.oom_score_adj or 0))
        os.setsid()  # as runc: the container's process leads its own session and group
        if stdio is not None:
            for target, fd in enumerate(stdio):
                os.dup2(fd, target, inheritable=True)
        if proc.terminal:
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        else:
            _own_stdio(proc.uid, proc.gid)
        last_cap = _last_cap()  # the host's /proc is out of reach once in the container
        # On cgroup v2 pause freezes the sentry too (sentry/cgroup.py): then killable
        # waits for its answers would keep the workload from freezing.
        killable = not cgroup_v2()
        enter()
        keep = {0, 1, 2, sock.fileno()} | ({start_r} if start_r is not None else set())
        _close_other_fds(keep)
        os.chdir(proc.cwd)
        if proc.umask is not None:
            os.umask(proc.umask)
        own_ptrace_domain()
        notify_fd = platforms.child_setup(
            platform, sock, proc.no_new_privs, set(proc.capabilities.get("bounding", [])),
            killable)
    except Exception as e:  # report the cause to the sentry, which reports it to the user
        msg = f"error:setting up the container: {e}"
        try:
            sock.send(msg.encode())
        finally:
            os._exit(1)
    # From here every syscall is filtered: only passthrough ones until the sentry answers
    # (after "ready"); an emulated one before that would deadlock.
    socket.send_fds(sock, [b"ok"], [notify_fd])
    os.close(notify_fd)
    try:
        # After the listener is made: RLIMIT_NOFILE 0 would forbid that descriptor.
        for kind, soft, hard in proc.rlimits:
            where = "rlimit " + resource_name(kind)
            resource.setrlimit(kind, (soft, hard))
        where = "user and capabilities"
        _set_user_and_caps(proc, last_cap)
    except (OSError, ValueError) as e:
        sock.send(f"error:setting {where}: {e}".encode())
        os._exit(1)
    sock.send(b"ready")
    sock.close()
    if start_r is not None:
        if os.read(start_r, 1) != b"s":
            os._exit(1)  # the sentry went away or deleted the container before start
        os.close(start_r)
    try:
        os.execve(exe, proc.args, dict(e.split("=", 1) for e in proc.env if "=" in e))
    except OSError as e:
        sys.stderr.write(f"runsc-py: exec {proc.args[0]}: {e.strerror}\n")
        os._exit(127)
