"""The virtual kernel the workload sees: identity, memory and CPUs sized to its limits,
and the services syscall handlers use (gofer, procfs)."""
from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from gofer.client import GoferClient
from sentry.cgroup import Cgroup, parse_cpu_list

# What gVisor reports (DESIGN.md): the workload never learns the host kernel.
RELEASE = "4.4.0"
VERSION = "#1 SMP Sun Jan 10 15:06:54 PST 2016"
_FIRST_MINOR = 0x40  # sandbox device numbers: 0:64, 0:65, ...


def _host_meminfo() -> dict[str, int]:
    out = {}
    with open("/proc/meminfo") as f:
        for line in f:
            key, _, rest = line.partition(":")
            out[key] = int(rest.split()[0]) * 1024
    return out


def _online_cpus() -> list[int]:
    with open("/sys/devices/system/cpu/online") as f:
        return parse_cpu_list(f.read())


@dataclass
class Kernel:
    gofer: GoferClient
    hostname: str
    domainname: str = "(none)"
    sysname: str = "Linux"
    release: str = RELEASE
    version: str = VERSION
    machine: str = "x86_64"
    cgroup: Cgroup | None = None
    gofer_pid: int = 0
    procfs: object = None
    boot_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    # Seconds the sandbox's time namespace takes off CLOCK_BOOTTIME (and MONOTONIC).
    boot_offset: int = 0
    # Set once a process called chroot: from then on roots may differ (syscalls/paths.py).
    chrooted: bool = False

    # Sends a signal to one thread of the sandbox (by host TID) through the spawner: what
    # Linux sends the caller of an emulated call itself (SIGXFSZ).
    signal_thread: Callable[[int, int], None] | None = None
    # How /proc shows a thread the platform holds in a ptrace stop (host TID -> "T
    # (stopped)" ...; None: as the host shows it). Set by the ptrace platform.
    task_state: Callable[[int], bytes | None] | None = None

    devices: dict[int, int] = field(default_factory=dict)  # host st_dev -> sandbox's
    # The host's CPUs, read once: the sentry's root has no /sys (sentry/confine.py).
    online_cpus: list[int] = field(default_factory=lambda: _online_cpus())

    # -- devices -------------------------------------------------------------------
    def sandbox_dev(self, host_dev: int) -> int:
        """The device number the sandbox shows for a host filesystem's: anonymous
        (major 0), numbered in the order the sandbox first sees them, the same wherever
        it appears (stat, statx, mountinfo, maps)."""
        dev = self.devices.get(host_dev)
        if dev is None:
            dev = self.devices[host_dev] = os.makedev(0, _FIRST_MINOR + len(self.devices))
        return dev

    # -- memory ------------------------------------------------------------------
    def memory(self) -> dict[str, int]:
        """Bytes: total, free, available, shared, buffers, cached, swap_total, swap_free.
        Total is the cgroup limit (host memory without one); free is total - usage."""
        host = _host_meminfo()
        limit = self.cgroup.memory_limit() if self.cgroup else None
        if limit is None or limit >= host["MemTotal"]:
            return {"total": host["MemTotal"], "free": host["MemFree"],
                    "available": host.get("MemAvailable", host["MemFree"]),
                    "shared": host.get("Shmem", 0), "buffers": host.get("Buffers", 0),
                    "cached": host.get("Cached", 0), "swap_total": host.get("SwapTotal", 0),
                    "swap_free": host.get("SwapFree", 0)}
        used = min(limit, self.cgroup.memory_usage())
        return {"total": limit, "free": limit - used, "available": limit - used,
                "shared": 0, "buffers": 0, "cached": 0, "swap_total": 0, "swap_free": 0}

    # -- CPUs --------------------------------------------------------------------
    def host_cpus(self) -> list[int]:
        """Host CPU numbers the container may use (its cpuset, cut to its quota)."""
        host = self.online_cpus
        return self.cgroup.cpu_count(host) if self.cgroup else list(host)

    def cpu_count(self) -> int:
        return len(self.host_cpus())

    def uptime(self) -> float:
        """CLOCK_BOOTTIME as the workload reads it, in its time namespace: what Linux
        shows in /proc/uptime and sysinfo there."""
        return time.clock_gettime(time.CLOCK_BOOTTIME) - self.boot_offset
