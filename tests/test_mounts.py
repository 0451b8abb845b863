"""The spec's mounts as runc makes them, and the mount table as runc's container shows it
(/proc/self/mountinfo and /proc/self/mounts), compared field by field; POSIX message
queues listed in /dev/mqueue (issue 12)."""
from __future__ import annotations

import ctypes
import os
import shutil
import uuid
from pathlib import Path

import pytest

from tests.conftest import REPO, build_static

# What differs by design, and only that, is normalised: mount IDs (kept as the structure
# "which mount is this one's parent") and device numbers (kept as "which mounts share a
# filesystem"). Also left out: runc's /sys/fs/cgroup mounts (runsc-py has no
# /sys/fs/cgroup: README) and runc's mounts over linux.maskedPaths/readonlyPaths entries
# that the synthetic /proc does not have (runc skips absent paths too); and the root
# mount's root, a host path (the bundle's rootfs) that runsc-py keeps out of the sandbox.
RESTRICTED_LIST = "/restricted"
SCRIPT = r"""
cat /proc/self/mountinfo; echo ===
cat /proc/self/mounts; echo ===
while read p; do if [ -e "$p" ]; then echo "$p"; fi; done < /restricted
"""


def _tables(out: str) -> tuple[list[str], list[str], set[str]]:
    info, mounts, present = out.split("===\n")
    return info.splitlines(), mounts.splitlines(), set(present.split())


def _left_out(point: str, restricted: set[str], present: set[str]) -> bool:
    return (point == "/sys/fs/cgroup" or point.startswith("/sys/fs/cgroup/")
            or (point in restricted and point not in present))


def _normal_mountinfo(lines: list[str], restricted: set[str],
                      present: set[str]) -> list[tuple]:
    rows = [line.split(" ") for line in lines]
    point_of = {r[0]: r[4] for r in rows}
    devs: dict[str, str] = {}
    out = []
    for r in rows:
        if _left_out(r[4], restricted, present):
            continue
        sep = r.index("-")
        dev = devs.setdefault(r[2], f"dev{len(devs)}")
        root = "/" if r[4] == "/" else r[3]
        out.append((r[4], point_of.get(r[1], "(outside)"), dev, root, r[5],
                    tuple(r[6:sep]), *r[sep + 1:]))
    return out


def _normal_mounts(lines: list[str], restricted: set[str], present: set[str]) -> list[str]:
    return [line for line in lines
            if not _left_out(line.split(" ")[1], restricted, present)]


def _spec_variant(bundle, variant: str) -> None:
    if variant == "default":
        return
    # Non-default options: proc with flags, sysfs writable, a read-only tmpfs named "foo".
    for m in bundle.spec["mounts"]:
        if m["type"] == "proc":
            m["options"] = ["nosuid", "noexec", "nodev"]
        elif m["type"] == "sysfs":
            m["options"] = ["nosuid", "noexec", "nodev"]
    bundle.spec["mounts"].append({"destination": "/mnt/ro-tmp", "type": "tmpfs",
                                  "source": "foo", "options": ["ro", "noatime", "size=1m"]})


@pytest.mark.parametrize("variant", ["default", "options"])
def test_mount_table_as_runc(runsc, runc, make_bundle, variant):
    """The same bundle (the default, Docker-like spec) under runc and runsc-py: the same
    mounts, sources, types, per-mount and filesystem options and optional fields."""
    bundle = make_bundle("sh", "-c", SCRIPT)
    _spec_variant(bundle, variant)
    bundle.write()
    linux = bundle.spec["linux"]
    restricted = set(linux.get("maskedPaths", [])) | set(linux.get("readonlyPaths", []))
    (bundle.rootfs / RESTRICTED_LIST[1:]).write_text("\n".join(sorted(restricted)) + "\n")
    theirs = runc(bundle)
    assert theirs.returncode == 0, theirs.stderr
    ours = runsc.run(bundle)
    assert ours.returncode == 0, ours.stderr
    r_info, r_mounts, r_present = _tables(theirs.stdout)
    o_info, o_mounts, o_present = _tables(ours.stdout)
    assert o_present <= r_present  # runsc-py's /proc has a subset of the host's
    assert "/proc/sys" in o_present
    assert _normal_mountinfo(o_info, restricted, o_present) == \
        _normal_mountinfo(r_info, restricted, o_present)
    assert _normal_mounts(o_mounts, restricted, o_present) == \
        _normal_mounts(r_mounts, restricted, o_present)
    # The comparison saw what the spec asks for (not two empty tables).
    points = [line.split(" ")[1] for line in o_mounts]
    assert {"/", "/proc", "/dev/shm", "/dev/mqueue", "/sys", "/proc/sys"} <= set(points)


@pytest.fixture(scope="module")
def mq_bin(tmp_path_factory) -> Path:
    return build_static(tmp_path_factory, REPO / "tests" / "mq_probe.c")


MQ_SCRIPT = r"""
/mq open /{name}; /mq send /{name} hello
ls -l /dev/mqueue | sed 1d | awk '{{print $1, $3, $4, $NF}}'
cat /dev/mqueue/{name}
rm /dev/mqueue/{name}; echo "rm: $?"
/mq unlink /{name}
/mq open /{name}2; /mq unlink /{name}2; ls /dev/mqueue | wc -l
"""


def test_mqueue_lists_the_sandboxs_queues_as_runc(runsc, runc, make_bundle, mq_bin):
    """mq_open (passthrough) makes a queue in the sandbox's IPC namespace; /dev/mqueue (a
    path the gofer serves) lists it, with its owner, mode and QSIZE line, and removing it
    there is mq_unlink, as under runc. A queue of the host's IPC namespace is not seen."""
    host_q = f"/rpy-host-{uuid.uuid4().hex[:8]}"
    librt = ctypes.CDLL(None, use_errno=True)
    librt.mq_open.restype = ctypes.c_int
    qd = librt.mq_open(host_q.encode(), os.O_CREAT | os.O_RDWR, 0o600, None)
    assert qd >= 0, os.strerror(ctypes.get_errno())
    try:
        name = "q" + uuid.uuid4().hex[:6]
        bundle = make_bundle("sh", "-c", MQ_SCRIPT.format(name=name))
        shutil.copy(mq_bin, bundle.rootfs / "mq")
        theirs = runc(bundle)
        assert theirs.returncode == 0, theirs.stderr
        ours = runsc.run(bundle)
        assert ours.returncode == 0, ours.stderr
    finally:
        os.close(qd)
        librt.mq_unlink(host_q.encode())
    assert f"-rw-r----- root root {name}" in theirs.stdout
    assert "QSIZE:5" in theirs.stdout and "unlink: -2" in theirs.stdout
    assert host_q[1:] not in theirs.stdout
    assert ours.stdout == theirs.stdout
