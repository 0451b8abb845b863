"""The OCI config.json: loading, validation and translation into a SandboxConfig."""
from __future__ import annotations

import fcntl
import json
import os
import re
import resource
import threading
from importlib import resources

from gofer.devices import Device, Rule
from runsc_py.errors import UserError
from sentry import cgroup
from sentry.config import ProcessConfig, SandboxConfig
from sentry.kernel import RELEASE as KERNEL_RELEASE

CAPABILITIES = [
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID",
    "SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN",
    "NET_RAW", "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE",
    "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME",
    "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
    "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ",
    "PERFMON", "BPF", "CHECKPOINT_RESTORE",
]
SHARE_CPU_ANNOTATION = "dev.runsc-py.share-cpu"
KERNEL_VERSION_ANNOTATION = "dev.runsc-py.kernel-version"
_NAMESPACE_TYPES = {"pid", "network", "ipc", "uts", "mount", "user", "cgroup", "time"}


def _uts_names(path: str) -> tuple[str, str]:
    """The host and domain names of the UTS namespace at path, read by a thread that
    joins it (a UTS setns is the calling thread's alone; the thread then ends)."""
    from syscalls import abi, host
    out: list = []

    def read() -> None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                host.setns(fd, abi.CLONE_NEWUTS)
            finally:
                os.close(fd)
            with open("/proc/sys/kernel/domainname") as f:  # the reading thread's names
                domain = f.read().strip()
            out.append((os.uname().nodename, "" if domain == "(none)" else domain))
        except OSError as e:
            out.append(e)

    thread = threading.Thread(target=read)
    thread.start()
    thread.join()
    if isinstance(out[0], OSError):
        raise UserError(f"config.json: joining the UTS namespace {path}: "
                        f"{out[0].strerror}") from None
    return out[0]


def default_spec() -> dict:
    return json.loads(resources.files("runsc_py").joinpath("default-spec.json").read_text())


_TYPE_NAMES = {str: "a string", list: "a list", dict: "an object", int: "an integer",
               bool: "a boolean"}


def _expect(value, typ: type, where: str):
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        raise UserError(f"config.json: {where} must be {_TYPE_NAMES[typ]}")
    return value


def _uint32(value, where: str) -> int:
    _expect(value, int, where)
    if not 0 <= value < 1 << 32:
        raise UserError(f"config.json: {where} must be between 0 and 4294967295")
    return value


def _list_or_absent(obj: dict, key: str, where: str) -> list:
    """Absent or null means empty; any other non-list ({} or false) is an error."""
    value = obj.get(key)
    return [] if value is None else _expect(value, list, where)


def _no_nul(value: str, where: str) -> str:
    if "\0" in value:
        raise UserError(f"config.json: {where} contains a NUL byte")
    return value


def _string_list(value, where: str) -> list[str]:
    _expect(value, list, where)
    for i, item in enumerate(value):
        _expect(item, str, f"{where}[{i}]")
        if "\0" in item:
            raise UserError(f"config.json: {where}[{i}] contains a NUL byte")
    return value


def _capability(name: str, where: str) -> int:
    short = name.upper().removeprefix("CAP_")
    if short not in CAPABILITIES:
        raise UserError(f"config.json: {where}: unknown capability {name!r}")
    return CAPABILITIES.index(short)


def load(bundle: str) -> dict:
    if not os.path.isdir(bundle):
        raise UserError(f"bundle {bundle!r} does not exist or is not a directory")
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            spec = json.load(f)
    except FileNotFoundError:
        raise UserError(f"config.json not found in bundle {bundle!r}") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise UserError(f"config.json is not valid JSON: {e}") from None
    except OSError as e:
        raise UserError(f"reading {path}: {e.strerror}") from None
    return _expect(spec, dict, "the document")


def parse_process(process: dict, where: str = "process", doc: str = "config.json"
                  ) -> ProcessConfig:
    """An OCI process object (config.json's, or `exec --process`'s)."""
    try:
        return _parse_process(process, where)
    except UserError as e:
        raise UserError(str(e).replace("config.json:", f"{doc}:", 1)) from None


def _parse_process(process: dict, where: str) -> ProcessConfig:
    if "args" not in process:
        raise UserError(f"config.json: {where}.args is missing")
    args = _string_list(process["args"], f"{where}.args")
    if not args or not args[0]:
        raise UserError(f"config.json: {where}.args must not be empty")
    env = _string_list(process.get("env", []), f"{where}.env")
    cwd = _expect(process.get("cwd", "/"), str, f"{where}.cwd") or "/"
    if not cwd.startswith("/"):
        raise UserError(f"config.json: {where}.cwd must be an absolute path")
    user = _expect(process.get("user", {}), dict, f"{where}.user")
    uid = _uint32(user.get("uid", 0), f"{where}.user.uid")
    gid = _uint32(user.get("gid", 0), f"{where}.user.gid")
    gids = _list_or_absent(user, "additionalGids", f"{where}.user.additionalGids")
    for i, g in enumerate(gids):
        _uint32(g, f"{where}.user.additionalGids[{i}]")
    umask = user.get("umask")
    if umask is not None:
        _expect(umask, int, f"{where}.user.umask")
        if not 0 <= umask <= 0o777:
            raise UserError(f"config.json: {where}.user.umask must be between 0 and 0777")
    caps = {}
    for kind, names in _expect(process.get("capabilities") or {}, dict,
                               f"{where}.capabilities").items():
        cwhere = f"{where}.capabilities.{kind}"
        caps[kind] = [_capability(n, cwhere) for n in _string_list(names, cwhere)]
    rlimits = []
    for i, rl in enumerate(_list_or_absent(process, "rlimits", f"{where}.rlimits")):
        rwhere = f"{where}.rlimits[{i}]"
        _expect(rl, dict, rwhere)
        kind = _expect(rl.get("type"), str, rwhere + ".type")
        if not kind.startswith("RLIMIT_") or not hasattr(resource, kind):
            raise UserError(f"config.json: {rwhere}: unknown rlimit {kind!r}")
        soft = _expect(rl.get("soft"), int, rwhere + ".soft")
        hard = _expect(rl.get("hard"), int, rwhere + ".hard")
        if not 0 <= soft <= hard < 1 << 64:
            raise UserError(f"config.json: {rwhere}: need 0 <= soft <= hard < 2^64")
        rlimits.append((getattr(resource, kind), soft, hard))
    size = _expect(process.get("consoleSize") or {}, dict, f"{where}.consoleSize")
    console_size = None
    if size:
        console_size = (_expect(size.get("height", 0), int, f"{where}.consoleSize.height"),
                        _expect(size.get("width", 0), int, f"{where}.consoleSize.width"))
    oom_score_adj = process.get("oomScoreAdj")
    if oom_score_adj is not None:
        _expect(oom_score_adj, int, f"{where}.oomScoreAdj")
        if not -1000 <= oom_score_adj <= 1000:
            raise UserError(f"config.json: {where}.oomScoreAdj must be between -1000 and 1000")
    return ProcessConfig(
        args=args, env=env, cwd=cwd, uid=uid, gid=gid, additional_gids=list(gids),
        umask=umask, capabilities=caps, rlimits=rlimits, oom_score_adj=oom_score_adj,
        no_new_privs=_expect(process.get("noNewPrivileges", False), bool,
                             f"{where}.noNewPrivileges"),
        terminal=_expect(process.get("terminal", False), bool, f"{where}.terminal"),
        console_size=console_size)


def to_sandbox_config(spec: dict, bundle: str, container_id: str,
                      state_dir: str) -> SandboxConfig:
    """Validate spec; a SandboxConfig. Every problem is a UserError naming the field."""
    bundle = os.path.abspath(bundle)
    process = parse_process(_expect(spec.get("process"), dict, "process"))
    root = _expect(spec.get("root"), dict, "root")
    root_path = _expect(root.get("path"), str, "root.path")
    rootfs = os.path.normpath(os.path.join(bundle, root_path))
    if not os.path.isdir(rootfs):
        raise UserError(f"rootfs {rootfs!r} does not exist or is not a directory")
    readonly = _expect(root.get("readonly", False), bool, "root.readonly")

    mounts = []
    for i, m in enumerate(_list_or_absent(spec, "mounts", "mounts")):
        where = f"mounts[{i}]"
        _expect(m, dict, where)
        dest = _expect(m.get("destination"), str, where + ".destination")
        if not dest.startswith("/"):
            raise UserError(f"config.json: {where}.destination must be an absolute path")
        if os.path.normpath(_no_nul(dest, where + ".destination")) == "/":
            raise UserError(f"config.json: {where}.destination: mounting over / is not "
                            "supported (root.path is the root)")
        _expect(m.get("type", ""), str, where + ".type")
        _expect(m.get("source", ""), str, where + ".source")
        _string_list(m.get("options") or [], where + ".options")
        mounts.append(m)

    linux = _expect(spec.get("linux") or {}, dict, "linux")
    ns_paths, listed = {}, set()
    for i, ns in enumerate(_list_or_absent(linux, "namespaces", "linux.namespaces")):
        where = f"linux.namespaces[{i}]"
        _expect(ns, dict, where)
        ns_type = _expect(ns.get("type"), str, where + ".type")
        if ns_type not in _NAMESPACE_TYPES:
            raise UserError(f"config.json: {where}: unknown namespace type {ns_type!r}")
        listed.add(ns_type)
        path = _expect(ns.get("path", ""), str, where + ".path")
        if path:
            _check_namespace_path(path, ns_type, where)
            if ns_type not in ("network", "ipc", "uts"):
                raise UserError(f"config.json: {where}: joining an existing {ns_type} "
                                "namespace is not supported (the sandbox makes its own)")
            ns_paths[ns_type] = path
        elif ns_type == "user":
            raise UserError(f"config.json: {where}: user namespaces are not supported")
    # Left out of the spec: the runtime's own, as runc does (pid, mount and time are
    # always the sandbox's own: DESIGN.md).
    shared = sorted(t for t in ("network", "ipc", "uts") if t not in listed)
    devices = _devices(linux)
    device_rules = _device_rules(_expect(linux.get("resources") or {}, dict,
                                         "linux.resources"))
    sysctl = _sysctl(linux, ns_paths, shared)
    masked = _absolute_paths(linux, "maskedPaths")
    readonly_paths = _absolute_paths(linux, "readonlyPaths")
    hostname = _no_nul(_expect(spec.get("hostname", ""), str, "hostname"), "hostname")
    if "uts" in shared:
        if hostname:
            raise UserError("config.json: hostname needs a UTS namespace of the container's "
                            "own (linux.namespaces has no uts)")
        hostname = os.uname().nodename
    domainname = _no_nul(_expect(spec.get("domainname", ""), str, "domainname"), "domainname")
    if "uts" in ns_paths and not (hostname and domainname):
        # Joined by path (the CRI joins a container to its pod's): Linux shows that
        # namespace's names, which the sentry, answering uname itself, must then know.
        ns_hostname, ns_domainname = _uts_names(ns_paths["uts"])
        hostname, domainname = hostname or ns_hostname, domainname or ns_domainname
    if len(hostname.encode()) > 64 or len(domainname.encode()) > 64:
        raise UserError("config.json: hostname and domainname are limited to 64 bytes")
    annotations = _expect(spec.get("annotations") or {}, dict, "annotations")
    share_cpu = annotations.get(SHARE_CPU_ANNOTATION, "false")
    if share_cpu not in ("true", "false"):
        raise UserError(f"config.json: annotations.{SHARE_CPU_ANNOTATION} must be "
                        "\"true\" or \"false\"")
    kernel_release = annotations.get(KERNEL_VERSION_ANNOTATION)
    if kernel_release is not None:
        check_kernel_release(kernel_release, f"annotations.{KERNEL_VERSION_ANNOTATION}")
    resources = parse_resources(_expect(linux.get("resources") or {}, dict, "linux.resources"))
    try:
        cgroup_path = cgroup.normalize_path(
            _expect(linux.get("cgroupsPath") or "", str, "linux.cgroupsPath"), container_id)
    except cgroup.CgroupError as e:
        raise UserError(f"config.json: linux.cgroupsPath: {e}") from None
    return SandboxConfig(
        container_id=container_id, bundle=bundle, rootfs=rootfs, readonly_root=readonly,
        mounts=mounts, hostname=hostname or container_id[:63] or "localhost",
        domainname=domainname, process=process, namespace_paths=ns_paths,
        state_dir=state_dir, resources=resources, cgroup_path=cgroup_path,
        share_cpu=share_cpu == "true", masked_paths=masked, readonly_paths=readonly_paths,
        devices=devices, device_rules=device_rules, sysctl=sysctl,
        shared_namespaces=shared, kernel_release=kernel_release or KERNEL_RELEASE,
        kernel_release_set=kernel_release is not None)


def check_kernel_release(release: object, where: str) -> None:
    """A release as uname shows one: "5.15.0", "6.1.0-18-amd64" (at most 64 bytes)."""
    ok = isinstance(release, str) and 0 < len(release) <= 64 and release[0].isdigit() and \
        all(c.isalnum() or c in ".-_+~" for c in release) and "." in release
    if not ok:
        raise UserError(f"{'config.json: ' if where.startswith('annotations') else ''}"
                        f"{where}: {release!r} is not a kernel release (such as 5.15.0)")


# Sysctls of the namespaces the init has of its own (runc's list): IPC, then network.
_IPC_SYSCTLS = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
                "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"}


_NS_GET_NSTYPE = 0xB703  # ioctl: the CLONE_NEW* type of a namespace file
_NS_FLAGS = {"pid": 0x20000000, "network": 0x40000000, "ipc": 0x08000000,
             "uts": 0x04000000, "mount": 0x00020000, "user": 0x10000000,
             "cgroup": 0x02000000, "time": 0x00000080}


def _check_namespace_path(path: str, ns_type: str, where: str) -> None:
    """path must name a namespace of type ns_type (runc fails setns otherwise)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise UserError(f"config.json: {where}: namespace path {path!r}: "
                        f"{e.strerror}") from None
    try:
        kind = fcntl.ioctl(fd, _NS_GET_NSTYPE)
    except OSError:
        raise UserError(f"config.json: {where}: {path!r} is not a namespace") from None
    finally:
        os.close(fd)
    if kind != _NS_FLAGS[ns_type]:
        actual = next((t for t, f in _NS_FLAGS.items() if f == kind), hex(kind))
        raise UserError(f"config.json: {where}: {path!r} is a {actual} namespace, not "
                        f"{ns_type}")


def _same_namespace(path: str, kind: str) -> bool:
    """Is the namespace at path the runtime's own (the host's)?"""
    try:
        return os.stat(path).st_ino == os.stat(f"/proc/self/ns/{kind}").st_ino
    except OSError:
        return False


def _sysctl(linux: dict, ns_paths: dict[str, str], shared: list[str]) -> dict[str, str]:
    """linux.sysctl: only what is namespaced (as runc checks), never a path out of
    /proc/sys."""
    sysctl = _expect(linux.get("sysctl") or {}, dict, "linux.sysctl")
    for key, value in sysctl.items():
        where = f"linux.sysctl[{key!r}]"
        _expect(value, str, where)
        _no_nul(value, where)
        parts = key.replace("/", ".").split(".")
        if not all(p and p not in (".", "..") and p.replace("-", "").replace("_", "")
                   .isalnum() for p in parts):
            raise UserError(f"config.json: {where}: not a sysctl name")
        if key in _IPC_SYSCTLS or key.startswith("fs.mqueue."):
            if "ipc" in ns_paths or "ipc" in shared:
                raise UserError(f"config.json: {where}: the IPC namespace is joined, not "
                                "the container's own")
        elif key.startswith("net."):
            if "network" in shared or ("network" in ns_paths
                                        and _same_namespace(ns_paths["network"], "net")):
                raise UserError(f"config.json: {where}: not allowed in the host's network "
                                "namespace")
        else:
            raise UserError(f"config.json: {where}: sysctl is not in a separate kernel "
                            "namespace")
    return dict(sysctl)


def _devices(linux: dict) -> list[Device]:
    """linux.devices: the nodes to make, as runc validates them."""
    out = []
    for i, d in enumerate(_list_or_absent(linux, "devices", "linux.devices")):
        where = f"linux.devices[{i}]"
        _expect(d, dict, where)
        path = _no_nul(_expect(d.get("path"), str, where + ".path"), where + ".path")
        if not path.startswith("/") or os.path.normpath(path) == "/":
            raise UserError(f"config.json: {where}.path must be an absolute path below /")
        kind = _expect(d.get("type"), str, where + ".type")
        if kind not in ("c", "b", "u", "p"):
            raise UserError(f"config.json: {where}.type: unknown device type {kind!r}")
        major, minor = _optional_int(d, "major", where), _optional_int(d, "minor", where)
        if kind != "p" and (major is None or minor is None):
            raise UserError(f"config.json: {where}: a {kind} device needs major and minor")
        mode = _optional_int(d, "fileMode", where)
        out.append(Device(os.path.normpath(path), kind, major or 0, minor or 0,
                          0o666 if mode is None else mode,
                          _optional_int(d, "uid", where) or 0,
                          _optional_int(d, "gid", where) or 0))
    return out


def _device_rules(res: dict) -> list[Rule]:
    """linux.resources.devices: the devices cgroup's allow and deny rules."""
    out = []
    for i, r in enumerate(_list_or_absent(res, "devices", "linux.resources.devices")):
        where = f"linux.resources.devices[{i}]"
        _expect(r, dict, where)
        kind = _expect(r.get("type") or "a", str, where + ".type")
        access = _expect(r.get("access") or "rwm", str, where + ".access")
        if kind not in ("a", "c", "b") or not set(access) <= set("rwm"):
            raise UserError(f"config.json: {where}: type must be a, c or b and access of "
                            "r, w and m")
        major, minor = _optional_int(r, "major", where), _optional_int(r, "minor", where)
        out.append(Rule(_expect(r.get("allow"), bool, where + ".allow"), kind,
                        None if major is None or major < 0 else major,
                        None if minor is None or minor < 0 else minor, access))
    return out


def _absolute_paths(linux: dict, key: str) -> list[str]:
    """linux.maskedPaths / linux.readonlyPaths: absolute container paths."""
    paths = _string_list(_list_or_absent(linux, key, f"linux.{key}"), f"linux.{key}")
    for i, p in enumerate(paths):
        if not p.startswith("/"):
            raise UserError(f"config.json: linux.{key}[{i}] must be an absolute path")
        _no_nul(p, f"linux.{key}[{i}]")
    return paths


def _optional_int(obj: dict, key: str, where: str) -> int | None:
    value = obj.get(key)
    return None if value is None else _expect(value, int, f"{where}.{key}")


def _block_io(bio: dict, out: cgroup.Resources) -> None:
    """linux.resources.blockIO: weight and the four throttles (per device)."""
    where = "linux.resources.blockIO"
    out.blkio_weight = _optional_int(bio, "weight", where) or None  # 0: unset (Docker)
    if out.blkio_weight is not None and not 10 <= out.blkio_weight <= 1000:
        raise UserError(f"config.json: {where}.weight: {out.blkio_weight} is not in 10-1000")
    if bio.get("leafWeight") or bio.get("weightDevice"):
        out.unsupported.append(f"{where}.leafWeight/weightDevice")
    for key, kind in (("throttleReadBpsDevice", "read_bps"),
                      ("throttleWriteBpsDevice", "write_bps"),
                      ("throttleReadIOPSDevice", "read_iops"),
                      ("throttleWriteIOPSDevice", "write_iops")):
        for i, d in enumerate(_list_or_absent(bio, key, f"{where}.{key}")):
            at = f"{where}.{key}[{i}]"
            _expect(d, dict, at)
            values = [_optional_int(d, k, at) for k in ("major", "minor", "rate")]
            if None in values or min(values) < 0:
                raise UserError(f"config.json: {at}: major, minor and rate are needed")
            out.blkio_throttle.setdefault(kind, []).append(values)


_PAGE_SIZE = re.compile(r"[1-9][0-9]*[KMG]B")  # as the hugetlb files name them: 2MB, 1GB


def _hugetlb_and_net(res: dict, out: cgroup.Resources) -> None:
    """linux.resources.hugepageLimits and .network (classID, priorities)."""
    where = "linux.resources"
    for i, h in enumerate(_list_or_absent(res, "hugepageLimits", where + ".hugepageLimits")):
        at = f"{where}.hugepageLimits[{i}]"
        _expect(h, dict, at)
        size = _expect(h.get("pageSize"), str, at + ".pageSize")
        if not _PAGE_SIZE.fullmatch(size):
            raise UserError(f"config.json: {at}.pageSize: invalid page size {size!r}")
        limit = _optional_int(h, "limit", at)
        if limit is None or limit < 0:
            raise UserError(f"config.json: {at}.limit is needed")
        out.hugepage_limits.append([size, limit])
    net = _expect(res.get("network") or {}, dict, where + ".network")
    classid = _optional_int(net, "classID", where + ".network")
    if classid is not None and not 0 <= classid < 1 << 32:
        raise UserError(f"config.json: {where}.network.classID: {classid} is not a u32")
    out.net_classid = classid
    for i, p in enumerate(_list_or_absent(net, "priorities", where + ".network.priorities")):
        at = f"{where}.network.priorities[{i}]"
        _expect(p, dict, at)
        name = _expect(p.get("name"), str, at + ".name")
        if not name or len(name) >= 16 or any(c in name for c in " /\n\0"):
            raise UserError(f"config.json: {at}.name: invalid interface name {name!r}")
        priority = _optional_int(p, "priority", at)
        if priority is None or not 0 <= priority < 1 << 32:
            raise UserError(f"config.json: {at}.priority: a u32 is needed")
        out.net_priorities.append([name, priority])


def parse_resources(res: dict) -> cgroup.Resources:
    """linux.resources: memory, cpu, pids and block I/O (devices: _device_rules)."""
    where = "linux.resources"
    memory = _expect(res.get("memory") or {}, dict, where + ".memory")
    cpu = _expect(res.get("cpu") or {}, dict, where + ".cpu")
    pids = _expect(res.get("pids") or {}, dict, where + ".pids")
    out = cgroup.Resources(
        memory_limit=_optional_int(memory, "limit", where + ".memory"),
        memory_swap=_optional_int(memory, "swap", where + ".memory"),
        cpu_quota=_optional_int(cpu, "quota", where + ".cpu"),
        cpu_period=_optional_int(cpu, "period", where + ".cpu"),
        cpu_shares=_optional_int(cpu, "shares", where + ".cpu"),
        cpus=_expect(cpu.get("cpus") or "", str, where + ".cpu.cpus") or None,
        mems=_expect(cpu.get("mems") or "", str, where + ".cpu.mems") or None,
        pids_limit=_optional_int(pids, "limit", where + ".pids"),
        memory_reservation=_optional_int(memory, "reservation", where + ".memory"),
        memory_swappiness=_optional_int(memory, "swappiness", where + ".memory"),
        disable_oom_killer=_expect(memory.get("disableOOMKiller", False), bool,
                                   where + ".memory.disableOOMKiller"))
    _block_io(_expect(res.get("blockIO") or {}, dict, where + ".blockIO"), out)
    # What runsc-py cannot apply on any host here: a warning at create, as runc gives.
    for key, name in (("kernel", "memory.kernel"), ("kernelTCP", "memory.kernelTCP")):
        if memory.get(key) is not None:
            out.unsupported.append(f"{where}.{name}")
    for key in ("realtimeRuntime", "realtimePeriod"):
        if cpu.get(key) is not None:
            out.unsupported.append(f"{where}.cpu.{key}")
    _hugetlb_and_net(res, out)
    if res.get("rdma"):
        out.unsupported.append(f"{where}.rdma")
    if out.memory_swappiness is not None and not 0 <= out.memory_swappiness <= 100:
        raise UserError(f"config.json: {where}.memory.swappiness: "
                        f"{out.memory_swappiness} is not in 0-100")
    if out.memory_limit is not None and 0 <= out.memory_limit < 4 * 1024 * 1024:
        raise UserError(f"config.json: {where}.memory.limit: at least 4 MiB is needed")
    if out.cpus:
        try:
            cgroup.parse_cpu_list(out.cpus)
        except ValueError:
            raise UserError(f"config.json: {where}.cpu.cpus: invalid list {out.cpus!r}") from None
    return out
