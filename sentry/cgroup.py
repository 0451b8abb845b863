"""The container's cgroup: created at `create`, removed at `delete`. cgroup v2 (unified)
when the host has it as its only hierarchy, else v1 with one directory per controller.

The whole sandbox is in it, as gVisor's is: the sentry joins it first thing (join), so the
gofer, the watchdog and the workload are born inside it, and `exec`'s proxies join it too.
CPU, memory and pids limits bound the runtime's own work, and docker stats, the kubelet
and the shim's OOM events (which read the cgroup of the pid in --pid-file, the sentry's)
see all of it. What keeps the sandbox alive inside its own limits:
- OOM: its processes have oom_score_adj -1000; the workload's have the spec's (or 0).
- pids: pids.max is the spec's limit plus the sandbox's own tasks (pids_reserve), so the
  workload gets exactly its limit; a gofer thread that cannot start is an errno.
- memory: a limit below MEMORY_FLOOR (what the sandbox itself needs) is refused.
v1's freezer is the exception: only the workload is in it (add), so a paused container's
sentry still answers; on v2 there is one cgroup and pause freezes the sandbox too."""
from __future__ import annotations

import errno
import logging
import math
import os
import struct
import time
from dataclasses import dataclass, field

from syscalls import abi, host

log = logging.getLogger("runsc-py.cgroup")
CGROUP_ROOT = "/sys/fs/cgroup"
V1_CONTROLLERS = ("memory", "cpu", "cpuacct", "cpuset", "pids", "freezer", "blkio",
                  "hugetlb", "net_cls", "net_prio")
# The smallest memory limit a sandbox is created with. The sentry, gofer and watchdog
# charge about 20 MiB to the cgroup (README: Kubernetes); measured, create fails at 20 MiB
# and a shell runs at 24. Below the line the sentry would be OOM-killed half-way, or, with
# its oom_score_adj of -1000 and no other process to kill, wait in the memcg OOM for ever.
MEMORY_FLOOR = 32 << 20


class CgroupError(Exception):
    pass


@dataclass
class Resources:
    """The part of the OCI linux.resources that runsc-py enforces."""
    memory_limit: int | None = None
    memory_swap: int | None = None  # memory + swap, as OCI (and v1's memsw) count it
    cpu_quota: int | None = None
    cpu_period: int | None = None
    cpu_shares: int | None = None
    cpus: str | None = None
    mems: str | None = None
    pids_limit: int | None = None
    memory_reservation: int | None = None  # soft limit (v2: memory.low)
    memory_swappiness: int | None = None  # 0-100 (v1 only)
    disable_oom_killer: bool = False  # v1 only
    blkio_weight: int | None = None  # 10-1000
    # (major, minor, rate) per kind: read_bps, write_bps, read_iops, write_iops
    blkio_throttle: dict[str, list] = field(default_factory=dict)
    hugepage_limits: list[list] = field(default_factory=list)  # [page size ("2MB"), bytes]
    net_classid: int | None = None  # net_cls.classid
    net_priorities: list[list] = field(default_factory=list)  # [interface, priority]
    unsupported: list[str] = field(default_factory=list)  # spec fields this cannot apply


def parse_cpu_list(text: str) -> list[int]:
    cpus: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        cpus.extend(range(int(lo), int(hi or lo) + 1))
    return sorted(set(cpus))


def is_v2() -> bool:
    return os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.controllers"))


def normalize_path(cgroups_path: str, container_id: str) -> str:
    """OCI linux.cgroupsPath as a path below each hierarchy's root. "slice:prefix:name"
    (systemd style) becomes /slice/prefix-name.scope."""
    if not cgroups_path:
        return f"/runsc-py/{container_id}"
    if ":" in cgroups_path and not cgroups_path.startswith("/"):
        parts = cgroups_path.split(":")
        if len(parts) != 3:
            raise CgroupError(f"invalid cgroupsPath {cgroups_path!r}")
        slice_, prefix, name = parts
        return f"/{slice_ or 'system.slice'}/{prefix}-{name}.scope"
    path = os.path.normpath("/" + cgroups_path)
    if ".." in path.split("/"):
        raise CgroupError(f"invalid cgroupsPath {cgroups_path!r}")
    return path


class Cgroup:
    def __init__(self, path: str) -> None:
        self.path = path
        self.v2 = is_v2()
        self.pids_limit: int | None = None  # the spec's (what the workload may have)
        self.pids_reserve = 0  # the sandbox's own tasks, on top of pids_limit

    def dirs(self) -> dict[str, str]:
        """Controller name -> directory ("" for v2's single directory). Co-mounted v1
        controllers (cpu,cpuacct) appear once, under the first name."""
        rel = self.path.lstrip("/")
        if self.v2:
            return {"": os.path.join(CGROUP_ROOT, rel)}
        out: dict[str, str] = {}
        seen = set()
        for c in V1_CONTROLLERS:
            mount = os.path.join(CGROUP_ROOT, c)
            if os.path.isdir(mount) and os.path.realpath(mount) not in seen:
                seen.add(os.path.realpath(mount))
                out[c] = os.path.join(mount, rel)
        return out

    def _dir(self, controller: str) -> str:
        """The directory of a v1 controller, also when it is co-mounted with another."""
        if self.v2:
            return self.dirs()[""]
        real = os.path.realpath(os.path.join(CGROUP_ROOT, controller))
        for c, d in self.dirs().items():
            if os.path.realpath(os.path.join(CGROUP_ROOT, c)) == real:
                return d
        raise KeyError(controller)

    def _write(self, controller: str, name: str, value: str) -> None:
        try:
            path = os.path.join(self._dir(controller), name)
        except KeyError:
            raise CgroupError(f"setting {name}: no {controller} cgroup") from None
        try:
            with open(path, "w") as f:
                f.write(value)
        except OSError as e:
            raise CgroupError(f"setting {name} to {value}: {e.strerror}") from None

    def _read(self, controller: str, name: str) -> str | None:
        try:
            with open(os.path.join(self._dir(controller), name)) as f:
                return f.read().strip()
        except (OSError, KeyError):
            return None

    # -- lifecycle -------------------------------------------------------------
    def create(self, res: Resources) -> None:
        made = []
        try:
            for controller, d in self.dirs().items():
                self._make_dirs(controller, d, made)
            if self.v2:
                self._enable_v2_controllers()
            self.apply(res)
        except (OSError, CgroupError) as e:
            for d in reversed(made):
                try:
                    os.rmdir(d)
                except OSError:
                    pass
            if isinstance(e, CgroupError):
                raise
            raise CgroupError(f"creating cgroup {self.path}: {e.strerror}") from None

    def _make_dirs(self, controller: str, d: str, made: list[str]) -> None:
        base = os.path.join(CGROUP_ROOT, controller) if controller else CGROUP_ROOT
        parts = os.path.relpath(d, base).split("/")
        cur = base
        for p in parts:
            cur = os.path.join(cur, p)
            try:
                os.mkdir(cur)
                made.append(cur)
            except FileExistsError:
                if cur == d and cur not in made and _has_processes(cur):
                    # An empty one (left by a sandbox that was killed, or made for us) is
                    # joined, as runc joins an existing cgroup.
                    raise CgroupError(f"cgroup {self.path} is in use by other processes"
                                      ) from None
                continue
            if controller == "cpuset":
                # A new v1 cpuset is empty: it must inherit cpus and mems to be usable.
                for name in ("cpuset.cpus", "cpuset.mems"):
                    with open(os.path.join(os.path.dirname(cur), name)) as f:
                        parent = f.read().strip()
                    with open(os.path.join(cur, name), "w") as f:
                        f.write(parent)

    def _enable_v2_controllers(self) -> None:
        rel = self.path.strip("/").split("/")
        cur = CGROUP_ROOT
        for p in rel:
            try:
                with open(os.path.join(cur, "cgroup.controllers")) as f:
                    available = f.read().split()
                wanted = [c for c in ("memory", "cpu", "cpuset", "pids", "hugetlb")
                          if c in available]
                with open(os.path.join(cur, "cgroup.subtree_control"), "w") as f:
                    f.write(" ".join("+" + c for c in wanted))
            except OSError:
                pass
            cur = os.path.join(cur, p)

    def apply(self, res: Resources) -> None:
        if res.memory_limit is not None and 0 < res.memory_limit < MEMORY_FLOOR:
            raise CgroupError(f"memory limit {res.memory_limit} is below the "
                              f"{MEMORY_FLOOR >> 20} MiB the sandbox itself needs")
        mem = "" if self.v2 else "memory"
        cpu = "" if self.v2 else "cpu"
        cpuset = "" if self.v2 else "cpuset"
        pids = "" if self.v2 else "pids"
        if self.v2:
            if res.memory_limit is not None:
                self._write(mem, "memory.max", _v2_max(res.memory_limit))
            if res.memory_swap is not None:
                swap = res.memory_swap - (res.memory_limit or 0) if res.memory_swap > 0 else -1
                self._write(mem, "memory.swap.max", _v2_max(swap))
            if res.cpu_quota is not None or res.cpu_period is not None:
                quota = res.cpu_quota if res.cpu_quota and res.cpu_quota > 0 else "max"
                self._write(cpu, "cpu.max", f"{quota} {res.cpu_period or 100000}")
            if res.cpu_shares:
                weight = 1 + ((res.cpu_shares - 2) * 9999) // 262142
                self._write(cpu, "cpu.weight", str(max(1, min(10000, weight))))
        else:
            if res.memory_limit is not None:
                self._write(mem, "memory.limit_in_bytes", str(res.memory_limit))
            if res.memory_swap is not None and self._read(mem, "memory.memsw.limit_in_bytes"):
                self._write(mem, "memory.memsw.limit_in_bytes", str(res.memory_swap))
            if res.cpu_period:
                self._write(cpu, "cpu.cfs_period_us", str(res.cpu_period))
            if res.cpu_quota is not None:
                self._write(cpu, "cpu.cfs_quota_us", str(res.cpu_quota or -1))
            if res.cpu_shares:
                self._write(cpu, "cpu.shares", str(res.cpu_shares))
        self._apply_more(res)
        if res.cpus:
            self._write(cpuset, "cpuset.cpus", res.cpus)
        if res.mems:
            self._write(cpuset, "cpuset.mems", res.mems)
        if res.pids_limit is not None:
            self.pids_limit = res.pids_limit if res.pids_limit > 0 else None
            self._write_pids_max(pids)

    def _apply_more(self, res: Resources) -> None:
        """Memory reservation, swappiness and the OOM killer, block I/O: what the host's
        cgroups have; a warning (the log) for the rest, as runc warns."""
        warn = [f"{name} is not applied (not supported)" for name in res.unsupported]
        if self.v2:
            if res.memory_reservation is not None:
                self._write("", "memory.low", _v2_max(res.memory_reservation))
            if res.memory_swappiness is not None:
                warn.append("memory.swappiness has no cgroup v2 setting: not applied")
            if res.disable_oom_killer:
                warn.append("memory.disableOOMKiller has no cgroup v2 setting: not applied")
            if res.blkio_weight is not None:
                self._write("", "io.weight", f"default {res.blkio_weight}")
            keys = {"read_bps": "rbps", "write_bps": "wbps", "read_iops": "riops",
                    "write_iops": "wiops"}
            for kind, devices in res.blkio_throttle.items():
                for major, minor, rate in devices:
                    self._write("", "io.max", f"{major}:{minor} {keys[kind]}={rate}")
        else:
            if res.memory_reservation is not None:
                self._write("memory", "memory.soft_limit_in_bytes",
                            str(res.memory_reservation))
            if res.memory_swappiness is not None:
                self._write("memory", "memory.swappiness", str(res.memory_swappiness))
            if res.disable_oom_killer:
                self._write("memory", "memory.oom_control", "1")
            if res.blkio_weight is not None:
                if self._read("blkio", "blkio.weight") is None:
                    warn.append("blockIO.weight: the host's blkio controller has no weight "
                                "(no CFQ/BFQ): not applied")
                else:
                    self._write("blkio", "blkio.weight", str(res.blkio_weight))
            for kind, devices in res.blkio_throttle.items():
                for major, minor, rate in devices:
                    self._write("blkio", f"blkio.throttle.{kind}_device",
                                f"{major}:{minor} {rate}")
        warn += self._apply_hugetlb_and_net(res)
        for line in warn:
            log.warning("%s", line)

    def _has(self, controller: str) -> bool:
        """Whether the container's cgroup has this controller (v1: the host mounts its
        hierarchy; v2: it is enabled in the container's cgroup)."""
        if self.v2:
            raw = self._read("", "cgroup.controllers")
            return raw is not None and controller in raw.split()
        try:
            return os.path.isdir(self._dir(controller))
        except KeyError:
            return False

    def _apply_hugetlb_and_net(self, res: Resources) -> list[str]:
        """hugetlb limits, net_cls's class ID and net_prio's priorities where the host has
        the controller; the warnings for what it has not (runc refuses those)."""
        warn = []
        where = "linux.resources"
        if res.hugepage_limits:
            if not self._has("hugetlb"):
                warn.append(f"{where}.hugepageLimits: the host has no hugetlb cgroup "
                            "controller: not applied")
            else:
                for size, limit in res.hugepage_limits:
                    name = f"hugetlb.{size}." + ("max" if self.v2 else "limit_in_bytes")
                    self._write("" if self.v2 else "hugetlb", name, _v2_max(limit) if
                                self.v2 else str(limit))
                    # The reservation limit too, where the kernel has it (5.7+), as runc:
                    # else a reserved but unfaulted mapping escapes the limit.
                    rsvd = name.replace(f"{size}.", f"{size}.rsvd.", 1)
                    if self._read("" if self.v2 else "hugetlb", rsvd) is not None:
                        self._write("" if self.v2 else "hugetlb", rsvd,
                                    _v2_max(limit) if self.v2 else str(limit))
        if res.net_classid is not None:
            if self.v2 or not self._has("net_cls"):
                warn.append(f"{where}.network.classID: the host has no net_cls cgroup "
                            "controller: not applied")
            else:
                self._write("net_cls", "net_cls.classid", str(res.net_classid))
        if res.net_priorities:
            if self.v2 or not self._has("net_prio"):
                warn.append(f"{where}.network.priorities: the host has no net_prio cgroup "
                            "controller: not applied")
            else:
                for name, priority in res.net_priorities:
                    self._write("net_prio", "net_prio.ifpriomap", f"{name} {priority}")
        return warn

    def _write_pids_max(self, pids: str) -> None:
        if self.pids_limit is None:
            self._write(pids, "pids.max", "max")
        else:
            self._write(pids, "pids.max", str(self.pids_limit + self.pids_reserve))

    def reserve_pids(self, delta: int) -> None:
        """The sandbox's own tasks changed by delta (its start, an exec's proxy): pids.max
        follows, so that the workload's share stays the spec's limit."""
        self.pids_reserve = max(0, self.pids_reserve + delta)
        if self.pids_limit is not None:
            self._write_pids_max("" if self.v2 else "pids")

    def set_pids_reserve(self, count: int) -> None:
        self.pids_reserve = 0
        self.reserve_pids(count)

    def task_count(self) -> int:
        """Tasks (threads included) in the cgroup now."""
        raw = self._read("" if self.v2 else "pids", "pids.current")
        if raw is not None:
            return int(raw)
        return sum(len(os.listdir(f"/proc/{p}/task")) for p in self.pids()
                   if os.path.isdir(f"/proc/{p}/task"))

    def join(self, pid: int) -> None:
        """A process of the sandbox itself (the sentry, an exec's proxy): every hierarchy
        but v1's freezer, which is the workload's alone (module docstring)."""
        self._move(pid, [d for c, d in self.dirs().items() if c != "freezer"], "the sandbox")

    def leave(self, pid: int, origin: dict[str, str]) -> None:
        """Move a process back to where it was (origin, from where()), so that the
        container's cgroup can be removed while it still runs."""
        self._move(pid, [os.path.join(self._mount(c), origin[c].lstrip("/"))
                         for c in self.dirs() if c in origin], "the sentry back")

    def where(self, pid: int) -> dict[str, str]:
        """The cgroup path of a process in each hierarchy dirs() covers."""
        out = {}
        with open(f"/proc/{pid}/cgroup") as f:
            for line in f:
                _, controllers, path = line.rstrip("\n").split(":", 2)
                if self.v2 and controllers == "":
                    out[""] = path
                elif not self.v2:
                    for c in self.dirs():
                        if c in controllers.split(","):
                            out[c] = path
        return out

    @staticmethod
    def _mount(controller: str) -> str:
        return os.path.join(CGROUP_ROOT, controller) if controller else CGROUP_ROOT

    def add(self, pid: int) -> None:
        """A workload process (forked by the sentry, so already in the rest): every
        hierarchy, the freezer included."""
        self._move(pid, list(self.dirs().values()), "the workload")

    @staticmethod
    def _move(pid: int, dirs: list[str], what: str) -> None:
        for d in dirs:
            try:
                with open(os.path.join(d, "cgroup.procs"), "w") as f:
                    f.write(str(pid))
            except OSError as e:
                raise CgroupError(f"moving {what} into {d}: {e.strerror}") from None

    def remove(self, wait: bool = True) -> None:
        """Remove the container's directories (their processes must be gone). wait=False:
        one still busy is left as it is (it has processes: not ours to remove)."""
        for controller, d in self.dirs().items():
            base = os.path.join(CGROUP_ROOT, controller) if controller else CGROUP_ROOT
            for _ in range(50 if wait else 1):
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError as e:
                    if e.errno != errno.EBUSY:
                        raise CgroupError(f"removing {d}: {e.strerror}") from None
                    if not wait:
                        break
                    time.sleep(0.02)  # the last processes are still being reaped
            else:
                if wait:
                    raise CgroupError(f"removing {d}: {os.strerror(errno.EBUSY)}")
            # Remove the parents runsc-py made (e.g. /runsc-py) if now empty.
            parent = os.path.dirname(d)
            while parent != base and os.path.basename(parent) == "runsc-py":
                try:
                    os.rmdir(parent)
                except OSError:
                    break
                parent = os.path.dirname(parent)

    def freeze(self, frozen: bool) -> None:
        """pause / resume: the v1 freezer, or v2's cgroup.freeze; waits until it holds."""
        if self.v2:
            self._write("", "cgroup.freeze", "1" if frozen else "0")
        else:
            self._write("freezer", "freezer.state", "FROZEN" if frozen else "THAWED")
        for _ in range(500):
            if self.frozen() == frozen:
                return
            time.sleep(0.01)
        raise CgroupError("the container's processes did not " +
                          ("freeze" if frozen else "thaw"))

    def freezing(self) -> bool:
        """Whether pause has asked the workload to freeze (FREEZING or FROZEN): the kernel
        has then marked each of its threads for signal handling, as a signal would."""
        if self.v2:
            return self._read("", "cgroup.freeze") == "1"
        return self._read("freezer", "freezer.state") in ("FREEZING", "FROZEN")

    def frozen(self) -> bool:
        if self.v2:
            events = self._read("", "cgroup.events") or ""
            return "frozen 1" in events
        return self._read("freezer", "freezer.state") == "FROZEN"

    # -- what the views show ---------------------------------------------------
    def memory_limit(self) -> int | None:
        raw = self._read("" if self.v2 else "memory",
                         "memory.max" if self.v2 else "memory.limit_in_bytes")
        if raw is None or raw == "max" or int(raw) >= 1 << 62:
            return None
        return int(raw)

    def memory_usage(self) -> int:
        raw = self._read("" if self.v2 else "memory",
                         "memory.current" if self.v2 else "memory.usage_in_bytes")
        return int(raw) if raw else 0

    def cpu_count(self, host_cpus: list[int]) -> list[int]:
        """The CPUs the container may use: its cpuset, cut to ceil(quota/period)."""
        raw = self._read("" if self.v2 else "cpuset",
                         "cpuset.cpus.effective" if self.v2 else "cpuset.cpus")
        cpus = parse_cpu_list(raw) if raw else list(host_cpus)
        if self.v2:
            quota_period = (self._read("", "cpu.max") or "max").split()
            quota = -1 if quota_period[0] == "max" else int(quota_period[0])
            period = int(quota_period[1]) if len(quota_period) > 1 else 100000
        else:
            quota = int(self._read("cpu", "cpu.cfs_quota_us") or -1)
            period = int(self._read("cpu", "cpu.cfs_period_us") or 100000)
        if quota > 0 and period > 0:
            cpus = cpus[: max(1, math.ceil(quota / period))]
        return cpus

    def pids(self) -> list[int]:
        """Every process in the cgroup: the sandbox's own and the workload's (those in
        the sandbox's PID namespace)."""
        try:
            d = self._dir("" if self.v2 else "memory")
        except KeyError:
            d = next(d for c, d in self.dirs().items() if c != "freezer")
        try:
            with open(os.path.join(d, "cgroup.procs")) as f:
                return [int(x) for x in f.read().split()]
        except OSError:
            return []


_MADV_POPULATE_WRITE = 23  # Linux 5.14: a write fault on each page, the data unchanged
_PM_PRESENT = 1 << 63
_PM_EXCLUSIVE = 1 << 56  # mapped by this process alone


def charge_shared_pages() -> int:
    """Copy the private pages this process still shares with the process it was forked
    from (bytes copied). v1 charges a page to the cgroup of the process that first
    touched it and no longer moves charges (move_charge_at_immigrate is refused on current
    kernels); after a fork from the runtime, most of the sentry's heap is such pages,
    charged to the runtime's cgroup and, once it exits, to no process's container. A write
    fault gives this process its own copy, charged here, as gVisor's freshly exec'd
    sandbox is. The runtime's copies go when it exits."""
    page = os.sysconf("SC_PAGE_SIZE")
    runs: list[tuple[int, int]] = []
    with open("/proc/self/maps") as maps, open("/proc/self/pagemap", "rb") as pagemap:
        for line in maps:
            fields = line.split()
            perms = fields[1]
            name = fields[5] if len(fields) > 5 else ""
            if not perms.startswith("rw") or perms[3] != "p" or name in ("[vvar]", "[vdso]"):
                continue
            lo, hi = (int(x, 16) for x in fields[0].split("-"))
            pagemap.seek(lo // page * 8)
            entries = pagemap.read((hi - lo) // page * 8)
            start = None
            for i, (entry,) in enumerate(struct.iter_unpack("Q", entries)):
                shared = entry & _PM_PRESENT and not entry & _PM_EXCLUSIVE
                if shared and start is None:
                    start = i
                elif not shared and start is not None:
                    runs.append((lo + start * page, (i - start) * page))
                    start = None
            if start is not None:
                runs.append((lo + start * page, hi - lo - start * page))
    copied = 0
    for addr, length in runs:
        try:
            host.syscall(abi.NR_MADVISE, addr, length, _MADV_POPULATE_WRITE)
            copied += length
        except OSError:
            pass  # an old kernel, or a mapping gone meanwhile: it stays charged elsewhere
    return copied


def _has_processes(d: str) -> bool:
    try:
        with open(os.path.join(d, "cgroup.procs")) as f:
            return bool(f.read().strip())
    except OSError:
        return False


def _v2_max(value: int) -> str:
    return "max" if value < 0 else str(value)
