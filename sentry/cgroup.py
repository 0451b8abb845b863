"""The container's cgroup: created at `create`, the workload's init joins it, removed at
`delete`. cgroup v2 (unified) when the host has it as its only hierarchy, else v1 with one
directory per controller. The sentry and the gofer stay outside it, so that an OOM kill
or a pids limit hits the workload only."""
from __future__ import annotations

import errno
import math
import os
import time
from dataclasses import dataclass

CGROUP_ROOT = "/sys/fs/cgroup"
V1_CONTROLLERS = ("memory", "cpu", "cpuset", "pids", "freezer")


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

    def dirs(self) -> dict[str, str]:
        """Controller name -> directory ("" for v2's single directory)."""
        rel = self.path.lstrip("/")
        if self.v2:
            return {"": os.path.join(CGROUP_ROOT, rel)}
        return {c: os.path.join(CGROUP_ROOT, c, rel) for c in V1_CONTROLLERS
                if os.path.isdir(os.path.join(CGROUP_ROOT, c))}

    def _write(self, controller: str, name: str, value: str) -> None:
        path = os.path.join(self.dirs()[controller], name)
        try:
            with open(path, "w") as f:
                f.write(value)
        except OSError as e:
            raise CgroupError(f"setting {name} to {value}: {e.strerror}") from None

    def _read(self, controller: str, name: str) -> str | None:
        try:
            with open(os.path.join(self.dirs()[controller], name)) as f:
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
                wanted = [c for c in ("memory", "cpu", "cpuset", "pids") if c in available]
                with open(os.path.join(cur, "cgroup.subtree_control"), "w") as f:
                    f.write(" ".join("+" + c for c in wanted))
            except OSError:
                pass
            cur = os.path.join(cur, p)

    def apply(self, res: Resources) -> None:
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
        if res.cpus:
            self._write(cpuset, "cpuset.cpus", res.cpus)
        if res.mems:
            self._write(cpuset, "cpuset.mems", res.mems)
        if res.pids_limit is not None:
            limit = "max" if res.pids_limit <= 0 else str(res.pids_limit)
            self._write(pids, "pids.max", limit)

    def add(self, pid: int) -> None:
        for d in self.dirs().values():
            try:
                with open(os.path.join(d, "cgroup.procs"), "w") as f:
                    f.write(str(pid))
            except OSError as e:
                raise CgroupError(f"moving the workload into {d}: {e.strerror}") from None

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
        d = next(iter(self.dirs().values()))
        try:
            with open(os.path.join(d, "cgroup.procs")) as f:
                return [int(x) for x in f.read().split()]
        except OSError:
            return []


def _has_processes(d: str) -> bool:
    try:
        with open(os.path.join(d, "cgroup.procs")) as f:
            return bool(f.read().strip())
    except OSError:
        return False


def _v2_max(value: int) -> str:
    return "max" if value < 0 else str(value)
