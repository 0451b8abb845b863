"""Which device files the workload may open: the standard set, the spec's
`linux.devices`, and, among those, what `linux.resources.devices` (the devices cgroup's
rules) allows. The gofer opens every file for the workload, so it is where the rules hold
(runc writes them to the devices cgroup, which checks the container's own opens)."""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass

# The nodes every container gets (OCI's default devices), and /dev/ptmx (devpts).
STANDARD = {
    "null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8), "urandom": (1, 9),
    "tty": (5, 0),
}
_PTMX = (5, 2)
_PTY_SLAVE_MAJORS = range(136, 144)


@dataclass(frozen=True)
class Device:
    """linux.devices[]: a node the runtime makes in the container."""
    path: str
    kind: str  # "c", "b", "u" (unbuffered char), "p" (FIFO)
    major: int = 0
    minor: int = 0
    mode: int = 0o666  # permission bits (fileMode)
    uid: int = 0
    gid: int = 0

    @property
    def st_mode(self) -> int:
        return self.mode & 0o7777 | {"c": stat.S_IFCHR, "u": stat.S_IFCHR,
                                     "b": stat.S_IFBLK, "p": stat.S_IFIFO}[self.kind]


@dataclass(frozen=True)
class Rule:
    """linux.resources.devices[]: allow or deny access ("rwm") to a type ("a", "c" or
    "b") and major:minor (None: any)."""
    allow: bool
    kind: str = "a"
    major: int | None = None
    minor: int | None = None
    access: str = "rwm"

    def matches(self, kind: str, major: int, minor: int) -> bool:
        return (self.kind in ("a", kind) and self.major in (None, major)
                and self.minor in (None, minor))


# What runc allows whatever the spec's rules say (appended after them, so they win):
# mknod of anything, the standard nodes, ptys and /dev/net/tun.
RUNC_ALLOWED = (
    Rule(True, "c", None, None, "m"), Rule(True, "b", None, None, "m"),
    *(Rule(True, "c", major, minor, "rwm") for major, minor in (*STANDARD.values(), _PTMX)),
    Rule(True, "c", 136, None, "rwm"), Rule(True, "c", 10, 200, "rwm"),
)


class Policy:
    def __init__(self, devices: list[Device] = (), rules: list[Rule] = ()) -> None:
        self.known = {("c", *dev) for dev in (*STANDARD.values(), _PTMX)}
        self.known |= {("b" if d.kind == "b" else "c", d.major, d.minor) for d in devices
                       if d.kind != "p"}
        self.rules = [*rules, *RUNC_ALLOWED] if rules else []

    def permits(self, kind: str, major: int, minor: int, access: str) -> bool:
        """Each access ("r", "w") goes by the last rule that names it for this device;
        with none, the cgroup's default: allowed."""
        for a in access:
            decision = True
            for rule in self.rules:
                if a in rule.access and rule.matches(kind, major, minor):
                    decision = rule.allow
            if not decision:
                return False
        return True

    def check(self, st: os.stat_result, access: str) -> bool:
        """May a file with this stat be opened for access (a device, or anything else)?"""
        if stat.S_ISCHR(st.st_mode):
            kind = "c"
        elif stat.S_ISBLK(st.st_mode):
            kind = "b"
        else:
            return True
        major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
        if kind == "c" and major in _PTY_SLAVE_MAJORS:
            return self.permits(kind, major, minor, access)
        return (kind, major, minor) in self.known and self.permits(kind, major, minor, access)
