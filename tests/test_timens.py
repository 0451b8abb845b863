"""The sandbox is a time namespace: CLOCK_BOOTTIME and CLOCK_MONOTONIC start near 0 when
it is created, and /proc/uptime, sysinfo, /proc/stat's btime and /proc/PID/stat's
starttime agree with them, through the vDSO and the syscall, in the init and in exec'd
processes. Under runc the same probe reads the host's uptime."""
from __future__ import annotations

import json
import shutil
import time
import uuid

import pytest
from conftest import REPO, build_static


@pytest.fixture(scope="session")
def timens_probe(tmp_path_factory):
    return build_static(tmp_path_factory, REPO / "tests" / "timens_probe.c")


def _bundle(make_bundle, timens_probe, *args: str):
    b = make_bundle(*args)
    shutil.copy(timens_probe, b.rootfs / "timens_probe")
    return b


def _clocks(out: str) -> dict[str, float]:
    return {k: float(v) for k, v in (line.split("=") for line in out.splitlines())}


def _agree(c: dict[str, float], near: float, slack: float = 2.0) -> None:
    """Every reading of the time since boot is `near` (within `slack` seconds)."""
    for name, value in c.items():
        assert abs(value - near) <= slack, (name, value, near, c)


def test_uptime_is_the_sandboxs_and_every_clock_agrees(runsc, runc, make_bundle,
                                                       timens_probe):
    r = runsc.run(_bundle(make_bundle, timens_probe, "/timens_probe"))
    assert r.returncode == 0, r
    c = _clocks(r.stdout)
    assert 0 <= c["boottime_vdso"] < 60, c
    _agree(c, c["boottime_vdso"])
    # runc leaves the clocks to the host: the probe reads the host's uptime there.
    ref = runc(_bundle(make_bundle, timens_probe, "/timens_probe"))
    assert ref.returncode == 0, ref
    host = _clocks(ref.stdout)
    _agree(host, time.clock_gettime(time.CLOCK_BOOTTIME), slack=5)


def test_an_exec_is_in_the_same_time_namespace(runsc, make_bundle, timens_probe, tmp_path):
    cid = "t-" + uuid.uuid4().hex[:10]
    b = _bundle(make_bundle, timens_probe, "sleep", "1000")
    assert runsc("create", "--bundle", str(b.path), cid).returncode == 0
    created = time.monotonic()
    assert runsc("start", cid).returncode == 0
    time.sleep(3)  # the clocks move on from the sandbox's creation, not the exec's
    process = tmp_path / "p.json"
    process.write_text(json.dumps({"terminal": False, "args": ["/timens_probe"], "cwd": "/",
                                   "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}}))
    r = runsc("exec", "--process", str(process), cid)
    assert r.returncode == 0, r
    c = _clocks(r.stdout)
    since = time.monotonic() - created
    assert since - 2 <= c["boottime_vdso"] <= since + 2, (c, since)
    # Its own start is seconds after boot, as the clocks in its namespace say.
    assert c["starttime"] >= 3, c
    _agree(c, c["boottime_vdso"])
