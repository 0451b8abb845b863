"""What the sentry needs to start a sandbox, already validated by the OCI front end."""
from __future__ import annotations

from dataclasses import dataclass, field

from gofer.devices import Device, Rule
from sentry.cgroup import Resources


@dataclass
class ProcessConfig:
    """OCI `process`: the container's init, or a process `exec` adds."""
    args: list[str]
    env: list[str]
    cwd: str
    uid: int = 0
    gid: int = 0
    additional_gids: list[int] = field(default_factory=list)
    umask: int | None = None
    capabilities: dict[str, list[int]] = field(default_factory=dict)
    rlimits: list[tuple[int, int, int]] = field(default_factory=list)
    no_new_privs: bool = False
    terminal: bool = False
    console_size: tuple[int, int] | None = None  # (rows, columns)
    oom_score_adj: int | None = None  # None: 0 (the sandbox's own -1000 is not inherited)


@dataclass
class SandboxConfig:
    container_id: str
    bundle: str
    rootfs: str  # absolute host path
    readonly_root: bool
    mounts: list[dict]
    hostname: str
    domainname: str
    process: ProcessConfig
    namespace_paths: dict[str, str] = field(default_factory=dict)  # type -> path to join
    state_dir: str = ""
    resources: Resources = field(default_factory=Resources)
    cgroup_path: str = ""  # below each hierarchy's root
    console_socket: str = ""  # where the pty master goes when process.terminal
    share_cpu: bool = False  # the workload runs on the sentry's CPU (README: Performance)
    masked_paths: list[str] = field(default_factory=list)  # linux.maskedPaths
    readonly_paths: list[str] = field(default_factory=list)  # linux.readonlyPaths
    devices: list[Device] = field(default_factory=list)  # linux.devices
    device_rules: list[Rule] = field(default_factory=list)  # linux.resources.devices
    sysctl: dict[str, str] = field(default_factory=dict)  # linux.sysctl (namespaced only)
    # network, ipc, uts left out of linux.namespaces: the runtime's own, as under runc
    shared_namespaces: list[str] = field(default_factory=list)
    platform: str = "seccomp"  # how syscalls reach the sentry: seccomp or ptrace
    # --strace: None (off), or the syscall names to log (empty: all); where and how
    strace: list[str] | None = None
    strace_format: str = "text"
    strace_log: str = ""  # a file (else the --log file, else stderr)
    kernel_release: str = "4.4.0"  # what uname, /proc/version and osrelease say
    kernel_release_set: bool = False  # by the container's annotation (beats the flag)
