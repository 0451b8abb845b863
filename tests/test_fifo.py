"""FIFOs: an open that waits for the other end blocks only its own thread, as on Linux; the
sentry and the gofer serve everyone else meanwhile. Each scenario of tests/fifo.c runs
under runc and under runsc-py and must print the same."""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
from conftest import REPO, build_static

SCENARIOS = ["reader-first", "writer-first", "reader-first-creat", "writer-first-creat",
             "flags", "perm", "signal", "signal-restart", "killed-reader", "killed-writer",
             "served"]


@pytest.fixture(scope="session")
def fifo_bin(tmp_path_factory) -> Path:
    return build_static(tmp_path_factory, REPO / "tests" / "fifo.c", "-pthread")


@pytest.fixture
def fifo_bundle(make_bundle, fifo_bin):
    def make(*args: str):
        bundle = make_bundle(*args, readonly=False)
        shutil.copy(fifo_bin, bundle.rootfs / "bin" / "fifo")
        # "perm" changes user and the FIFO's group.
        for caps in bundle.spec["process"]["capabilities"].values():
            caps += ["CAP_SETUID", "CAP_SETGID", "CAP_CHOWN"]
        return bundle.write()
    return make


def lines(out: str) -> list[str]:
    # Both ends print, each in its own process: the interleaving is the scheduler's.
    return sorted(out.splitlines())


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_fifo_scenario_as_under_runc(scenario, runsc, runc, fifo_bundle):
    bundle = fifo_bundle("/bin/fifo", scenario, "/tmp/f")
    want = runc(bundle)
    assert want.returncode == 0, want.stderr
    start = time.monotonic()
    got = runsc.run(bundle, timeout=30)
    took = time.monotonic() - start
    assert got.returncode == 0, got.stderr
    assert lines(got.stdout) == lines(want.stdout)
    if not scenario.startswith("killed"):
        assert "read: hi" in got.stdout.splitlines()
    assert took < 15, took


@pytest.mark.parametrize("script", [
    "mkfifo f; (echo hi > f &); cat f",
    "mkfifo f; (sleep 0.3; echo hi > f) & cat f; wait",
    "mkfifo f; (sleep 0.3; cat f) & echo hi > f; wait",
    "mkfifo f; cat f & sleep 0.3; echo hi > f; wait; cat < f & echo there > f; wait",
])
def test_busybox_sh_fifo_as_under_runc(script, runsc, runc, make_bundle):
    bundle = make_bundle("sh", "-c", "cd /tmp && " + script, readonly=False)
    want = runc(bundle)
    (bundle.rootfs / "tmp" / "f").unlink()
    got = runsc.run(bundle, timeout=30)
    assert (got.returncode, got.stdout) == (want.returncode, want.stdout) == (0, want.stdout)
    assert got.stdout.startswith("hi\n"), got.stdout


def test_init_exiting_ends_the_sandbox_while_a_fifo_open_waits(runsc, runc, fifo_bundle):
    bundle = fifo_bundle("/bin/fifo", "exit-pending", "/tmp/f")
    want = runc(bundle)
    start = time.monotonic()
    got = runsc.run(bundle, timeout=30)
    assert time.monotonic() - start < 10
    assert (got.returncode, got.stdout) == (want.returncode, want.stdout) == (3, "exiting\n")


def _tasks(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_delete_force_while_a_fifo_open_waits_leaves_nothing(runsc, fifo_bundle):
    bundle = fifo_bundle("/bin/fifo", "block", "/tmp/f")
    assert runsc("create", "--bundle", str(bundle.path), "fifo").returncode == 0
    st = json.loads((runsc.root / "fifo" / "state.json").read_text())
    pids = [st["pid"], st["gofer_pid"], st["init_pid"]]
    assert runsc("start", "fifo").returncode == 0
    # The open waits in a thread of the gofer, which serves other requests meanwhile.
    deadline = time.monotonic() + 10
    while _tasks(st["gofer_pid"]) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _tasks(st["gofer_pid"]) == 2
    assert json.loads(runsc("state", "fifo").stdout)["status"] == "running"
    r = runsc("delete", "--force", "fifo", timeout=20)
    assert r.returncode == 0, r.stderr
    deadline = time.monotonic() + 5
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [p for p in pids if _alive(p)] == []
    assert not (runsc.root / "fifo").exists()
    assert runsc("state", "fifo").returncode != 0
