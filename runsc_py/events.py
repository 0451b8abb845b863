"""`runsc-py events`: the container's statistics and OOM notifications as runc prints
them (one JSON object a line: {"type": "stats"|"oom", "id": ID, "data": {...}}), read
from the container's cgroup, which holds the whole sandbox (sentry/cgroup.py): the numbers
are the container's, runtime included, as the shim's and the kubelet's are.

The field names and which ones are left out when zero are runc's (types/events.go); the
values come from cgroup v1's per-controller files or v2's unified ones. Not collected:
hugetlb (runsc-py makes no hugetlb cgroup), Intel RDT and network interfaces (runc leaves
them empty too when it has none)."""
from __future__ import annotations

import json
import os
import select
import sys
import time
from collections.abc import Callable

from sentry.cgroup import Cgroup, parse_cpu_list

USER_HZ = os.sysconf("SC_CLK_TCK")  # cpuacct.stat counts in these
NS_PER_TICK = 1_000_000_000 // USER_HZ
V2_MAX = 2**64 - 1  # what runc reports for v2's "max"


class Reader:
    """The files of one container's cgroup, by controller (v1) or all in one (v2)."""

    def __init__(self, cgroup_path: str) -> None:
        self.cg = Cgroup(cgroup_path)
        self.v2 = self.cg.v2

    def path(self, controller: str, name: str) -> str | None:
        try:
            return os.path.join(self.cg._dir("" if self.v2 else controller), name)
        except KeyError:
            return None

    def text(self, controller: str, name: str) -> str | None:
        path = self.path(controller, name)
        if path is None:
            return None
        try:
            with open(path) as f:
                return f.read()
        except OSError:
            return None

    def int(self, controller: str, name: str) -> int:
        raw = (self.text(controller, name) or "").strip()
        if raw == "max":
            return V2_MAX
        try:
            return int(raw)
        except ValueError:
            return 0

    def keyed(self, controller: str, name: str) -> dict[str, int]:
        """A "key value" per line file (memory.stat, cpu.stat, memory.events)."""
        out: dict[str, int] = {}
        for line in (self.text(controller, name) or "").splitlines():
            key, _, value = line.partition(" ")
            try:
                out[key] = int(value)
            except ValueError:
                continue
        return out

    def exists(self) -> bool:
        """The cgroup is still there (`delete` removes it)."""
        d = self.path("memory", "")
        return d is not None and os.path.isdir(d)


def _omit_zero(d: dict, *keys: str) -> dict:
    """Go's omitempty for the numbers and lists runc tags so."""
    return {k: v for k, v in d.items() if not (k in keys and not v)}


def _entry(limit: int, usage: int, max_usage: int, failcnt: int) -> dict:
    return _omit_zero({"limit": limit, "usage": usage, "max": max_usage,
                       "failcnt": failcnt}, "usage", "max")


def _cpu_v1(r: Reader) -> dict:
    percpu = [int(x) for x in (r.text("cpuacct", "cpuacct.usage_percpu") or "").split()]
    kernel, user = [], []
    for line in (r.text("cpuacct", "cpuacct.usage_all") or "").splitlines()[1:]:
        cols = line.split()
        if len(cols) == 3:
            user.append(int(cols[1]))
            kernel.append(int(cols[2]))
    stat = r.keyed("cpuacct", "cpuacct.stat")
    throttle = r.keyed("cpu", "cpu.stat")
    return {
        "usage": _omit_zero({
            "total": r.int("cpuacct", "cpuacct.usage"), "percpu": percpu,
            "percpu_kernel": kernel, "percpu_user": user,
            "kernel": stat.get("system", 0) * NS_PER_TICK,
            "user": stat.get("user", 0) * NS_PER_TICK,
        }, "total", "percpu", "percpu_kernel", "percpu_user"),
        "throttling": _omit_zero({
            "periods": throttle.get("nr_periods", 0),
            "throttledPeriods": throttle.get("nr_throttled", 0),
            "throttledTime": throttle.get("throttled_time", 0),
        }, "periods", "throttledPeriods", "throttledTime"),
    }


def _cpu_v2(r: Reader) -> dict:
    stat = r.keyed("", "cpu.stat")
    return {
        "usage": _omit_zero({
            "total": stat.get("usage_usec", 0) * 1000,
            "kernel": stat.get("system_usec", 0) * 1000,
            "user": stat.get("user_usec", 0) * 1000,
        }, "total"),
        "throttling": _omit_zero({
            "periods": stat.get("nr_periods", 0),
            "throttledPeriods": stat.get("nr_throttled", 0),
            "throttledTime": stat.get("throttled_usec", 0) * 1000,
        }, "periods", "throttledPeriods", "throttledTime"),
    }


def _cpuset(r: Reader) -> dict:
    effective = ".effective" if r.v2 else ""
    cpus = parse_cpu_list(r.text("cpuset", "cpuset.cpus" + effective) or "")
    mems = parse_cpu_list(r.text("cpuset", "cpuset.mems" + effective) or "")
    out: dict = {"cpus": cpus, "cpu_exclusive": 0, "mems": mems}
    if r.v2:
        out.update(mem_hardwall=0, mem_exclusive=0, memory_migrate=0, memory_spread_page=0,
                   memory_spread_slab=0, memory_pressure=0, sched_load_balance=0,
                   sched_relax_domain_level=0)
        return _omit_zero(out, "cpus", "mems")
    out["cpu_exclusive"] = r.int("cpuset", "cpuset.cpu_exclusive")
    for key in ("mem_hardwall", "mem_exclusive", "memory_migrate", "memory_spread_page",
                "memory_spread_slab", "memory_pressure", "sched_load_balance",
                "sched_relax_domain_level"):
        out[key] = r.int("cpuset", "cpuset." + key)
    return _omit_zero(out, "cpus", "mems")


def _memory_v1(r: Reader) -> dict:
    raw = r.keyed("memory", "memory.stat")

    def entry(prefix: str) -> dict:
        return _entry(r.int("memory", prefix + "limit_in_bytes"),
                      r.int("memory", prefix + "usage_in_bytes"),
                      r.int("memory", prefix + "max_usage_in_bytes"),
                      r.int("memory", prefix + "failcnt"))

    # Without swap accounting runc reports the memory numbers as swap.
    swap = "memory.memsw." if r.text("memory", "memory.memsw.usage_in_bytes") else "memory."
    return _omit_zero({"cache": raw.get("cache", 0), "usage": entry("memory."),
                       "swap": entry(swap), "kernel": entry("memory.kmem."),
                       "kernelTCP": entry("memory.kmem.tcp."), "raw": raw}, "cache", "raw")


def _memory_v2(r: Reader) -> dict:
    raw = r.keyed("", "memory.stat")
    events = r.keyed("", "memory.events")
    usage, limit = r.int("", "memory.current"), r.int("", "memory.max")
    swap_usage, swap_limit = r.int("", "memory.swap.current"), r.int("", "memory.swap.max")
    peak = r.int("", "memory.peak")
    # runc's v2 swap entry counts memory and swap together, as v1's memsw does.
    swap_total = min(V2_MAX, swap_limit + limit)
    return _omit_zero({
        "cache": raw.get("file", 0),
        "usage": _entry(limit, usage, peak, events.get("max", 0)),
        "swap": _entry(swap_total, swap_usage + usage, 0, 0),
        "kernel": _entry(0, raw.get("kernel", 0), 0, 0),
        "kernelTCP": _entry(0, 0, 0, 0),
        "raw": raw,
    }, "cache", "raw")


_BLKIO_V1 = (("ioServiceBytesRecursive", "blkio.throttle.io_service_bytes_recursive"),
             ("ioServicedRecursive", "blkio.throttle.io_serviced_recursive"))


def _blkio(r: Reader) -> dict:
    out: dict[str, list] = {}
    if r.v2:
        rows: dict[str, list] = {"ioServiceBytesRecursive": [], "ioServicedRecursive": []}
        for line in (r.text("", "io.stat") or "").splitlines():
            dev, *fields = line.split()
            major, _, minor = dev.partition(":")
            values = dict(f.split("=", 1) for f in fields if "=" in f)
            for key, names in (("ioServiceBytesRecursive", ("rbytes", "wbytes")),
                               ("ioServicedRecursive", ("rios", "wios"))):
                for name, op in zip(names, ("Read", "Write"), strict=True):
                    if name in values:
                        rows[key].append(_omit_zero(
                            {"major": int(major), "minor": int(minor), "op": op,
                             "value": int(values[name])}, "major", "minor", "op", "value"))
        return {k: v for k, v in rows.items() if v}
    for key, name in _BLKIO_V1:
        entries = []
        for line in (r.text("blkio", name) or "").splitlines():
            cols = line.split()
            if len(cols) != 3 or ":" not in cols[0]:
                continue  # the "Total N" line
            major, _, minor = cols[0].partition(":")
            entries.append(_omit_zero({"major": int(major), "minor": int(minor),
                                       "op": cols[1], "value": int(cols[2])},
                                      "major", "minor", "op", "value"))
        if entries:
            out[key] = entries
    return out


def stats(cgroup_path: str) -> dict:
    """runc's Stats object for the container's cgroup."""
    r = Reader(cgroup_path)
    pids_limit = r.int("pids", "pids.max")
    return {
        "cpu": _cpu_v2(r) if r.v2 else _cpu_v1(r),
        "cpuset": _cpuset(r),
        "memory": _memory_v2(r) if r.v2 else _memory_v1(r),
        "pids": _omit_zero({"current": r.int("pids", "pids.current"),
                            "limit": 0 if pids_limit == V2_MAX else pids_limit},
                           "current", "limit"),
        "blkio": _blkio(r),
        "hugetlb": {},
        "intel_rdt": {},
        "network_interfaces": None,
    }


def event(kind: str, container_id: str, data: dict | None = None) -> str:
    doc: dict = {"type": kind, "id": container_id}
    if data is not None:
        doc["data"] = data
    return json.dumps(doc, separators=(",", ":"))


_UNITS = {"ns": 1, "us": 10**3, "\u00b5s": 10**3, "\u03bcs": 10**3, "ms": 10**6,
          "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
_MAX = 1 << 63  # Go sums in a uint64 and allows up to this (negated) or one less


def _digits(s: str, i: int) -> int:
    while i < len(s) and "0" <= s[i] <= "9":
        i += 1
    return i


def parse_duration(text: str) -> float:
    """A Go duration ("5s", "100ms", "1m30s", "-1.5h") in seconds, as runc's --interval
    reads it (time.ParseDuration): the same strings accepted, the same nanoseconds (each
    fraction truncated as Go's float arithmetic does), the same overflows refused."""
    bad = ValueError(f'time: invalid duration "{text}"')
    s, neg = text, False
    if s[:1] in ("+", "-"):
        neg, s = s[0] == "-", s[1:]
    if s == "0":
        return 0.0
    if not s:
        raise bad
    total = 0
    while s:
        if not (s[0] == "." or "0" <= s[0] <= "9"):
            raise bad
        end = _digits(s, 0)
        value = 0
        for c in s[:end]:
            if value > _MAX // 10:
                raise bad
            value = value * 10 + ord(c) - 48
            if value > _MAX:
                raise bad
        pre, s = end > 0, s[end:]
        frac, scale, post = 0, 1.0, False
        if s[:1] == ".":
            end = _digits(s, 1)
            overflow = False
            for c in s[1:end]:
                if overflow or frac > (_MAX - 1) // 10 or frac * 10 + ord(c) - 48 >= _MAX:
                    overflow = True  # later digits are dropped, as Go drops them
                    continue
                frac, scale = frac * 10 + ord(c) - 48, scale * 10
            post, s = end > 1, s[end:]
        if not pre and not post:
            raise bad
        end = 0
        while end < len(s) and not (s[end] == "." or "0" <= s[end] <= "9"):
            end += 1
        unit = _UNITS.get(s[:end])
        if unit is None or value > _MAX // unit:
            raise bad
        s = s[end:]
        value *= unit
        if frac:
            value += int(float(frac) * (float(unit) / scale))
            if value > _MAX:
                raise bad
        total += value
        if total > _MAX:
            raise bad
    if not neg and total > _MAX - 1:
        raise bad
    return (-total if neg else total) / 1e9


class OomWatch:
    """OOM kills in the container's cgroup: v1's memory.oom_control eventfd (which also
    fires when the cgroup is removed), v2's oom_kill count in memory.events."""

    def __init__(self, r: Reader) -> None:
        self.r = r
        self.efd: int | None = None
        self.gone = False
        self.count = r.keyed("", "memory.events").get("oom_kill", 0) if r.v2 else 0
        if not r.v2:
            control = r.path("memory", "memory.oom_control")
            event_control = r.path("memory", "cgroup.event_control")
            if control is None or event_control is None:
                return
            self.efd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
            try:
                cfd = os.open(control, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    with open(event_control, "w") as f:
                        f.write(f"{self.efd} {cfd}")
                finally:
                    os.close(cfd)
            except OSError:
                self.gone = True  # removed since the container was looked up

    def wait(self, timeout: float) -> int:
        """OOM events within timeout seconds (returns early on one); -1 once the cgroup
        is gone."""
        if self.gone:
            return -1
        if self.efd is not None:
            ready, _, _ = select.select([self.efd], [], [], max(0.0, timeout))
            if not ready:
                return 0
            try:
                os.eventfd_read(self.efd)
            except BlockingIOError:
                return 0
            # One event a wake-up, as runc reads it (OOMs between two reads count once).
            return -1 if not self.r.exists() else 1
        deadline = time.monotonic() + timeout
        while True:
            if not self.r.exists():
                return -1
            count = self.r.keyed("", "memory.events").get("oom_kill", 0)
            if count > self.count:
                new, self.count = count - self.count, count
                return new
            left = deadline - time.monotonic()
            if left <= 0:
                return 0
            time.sleep(min(0.1, left))


def stream(container_id: str, cgroup_path: str, interval: float,
           write: Callable[[str], None] | None = None) -> None:
    """runc's `events` without --stats: stats every interval, an "oom" event for each OOM
    kill as it happens, until the container's cgroup is removed."""
    out = write or (lambda line: (sys.stdout.write(line + "\n"), sys.stdout.flush()))
    r = Reader(cgroup_path)
    watch = OomWatch(r)
    next_stats = time.monotonic() + interval
    while True:
        n = watch.wait(next_stats - time.monotonic())
        if n < 0:
            return
        for _ in range(n):
            out(event("oom", container_id))
        if time.monotonic() >= next_stats:
            next_stats += interval
            if r.exists():
                out(event("stats", container_id, stats(cgroup_path)))
