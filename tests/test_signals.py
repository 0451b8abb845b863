"""Signals meeting emulated syscalls. An emulated call that Linux never interrupts (chmod,
rename, stat...) completes even when a signal arrives meanwhile, the sandbox's own
activity included (the gofer's change fires a dnotify signal); the signal is delivered
when it returns. A call that legitimately waits (a FIFO open) is interrupted as on Linux:
EINTR without SA_RESTART, restarted with it or after a stop. Each scenario of
tests/signals.c runs under runc and under runsc-py and must print the same."""
from __future__ import annotations

import json
import shutil
import time
import uuid
from pathlib import Path

import pytest
from conftest import PLATFORM, REPO, Runtime, build_static

SCENARIOS = ["notify-sigio", "notify-rt", "timer", "timer-restart", "fifo-stop", "fifo-quit",
             "fifo-blocked", "fifo-thread", "fifo-leader"]


@pytest.fixture(scope="session")
def signals_bin(tmp_path_factory) -> Path:
    return build_static(tmp_path_factory, REPO / "tests" / "signals.c", "-pthread")


def lines(out: str) -> list[str]:
    # Parent and child both print: the interleaving is the scheduler's.
    return sorted(out.splitlines())


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_signal_scenario_as_under_runc(scenario, runsc, runc, make_bundle, signals_bin):
    bundle = make_bundle("/bin/signals", scenario, readonly=False)
    shutil.copy(signals_bin, bundle.rootfs / "bin" / "signals")
    want = runc(bundle)
    assert want.returncode == 0, want.stderr
    got = runsc.run(bundle, timeout=60)
    assert got.returncode == 0, got.stderr
    expected = want.stdout
    if PLATFORM == "ptrace" and scenario == "fifo-leader":
        # Known difference (README, the ptrace platform): a thread in a ptrace stop is
        # not one the kernel gives a process's signal to, so the other thread takes it
        # and the leader's open goes on until its writer comes.
        assert "open: EINTR" in expected
        expected = expected.replace("open: EINTR", "open: 0")
    assert lines(got.stdout) == lines(expected)
    assert "timeout" not in got.stdout


_STATE = "sleep 0.2; grep State /proc/$p/status; "


@pytest.mark.parametrize("script", [
    # Job control: the stopped job is shown stopped, continues, and ends by SIGTERM.
    "sleep 100 & kill -STOP %1; kill -CONT %1; kill %1; wait; echo status $?",
    "sleep 100 & p=$!; kill -STOP $p; " + _STATE + "kill -CONT $p; " + _STATE +
    "kill $p; wait $p; echo $?",
    # A FIFO open in a job that is stopped (it shows "T" at once, as on Linux) and continued
    # completes when its writer comes. (The writer waits until the reader waits again:
    # busybox's SIGCHLD handler has no SA_RESTART, and the continued cat's SIGCHLD would
    # interrupt a writer's open that came first, on Linux too.)
    "cd /tmp && mkfifo f && { cat f & p=$!; sleep 0.3; kill -STOP $p; " + _STATE +
    "kill -CONT $p; " + _STATE + "echo hi > f; wait $p; echo status $?; }",
    # A fatal signal ends a waiting FIFO open at once (the kernel ends a killable wait).
    "cd /tmp && mkfifo f && { cat f & p=$!; sleep 0.3; kill $p; wait $p; echo status $?; }",
])
def test_busybox_sh_job_control_as_under_runc(script, runsc, runc, make_bundle):
    bundle = make_bundle("sh", "-c", script, readonly=False)
    want = runc(bundle)
    f = bundle.rootfs / "tmp" / "f"
    if f.exists():
        f.unlink()
    got = runsc.run(bundle, timeout=60)
    assert (got.returncode, got.stdout) == (want.returncode, want.stdout), got.stderr


class Runc(Runtime):
    """runc with a private --root, called exactly as runsc-py is."""

    def cmd(self, *args: str) -> list[str]:
        return ["runc", "--root", str(self.root), *args]


def _wait_for(predicate, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.parametrize("runtime", ["runc", "runsc-py"])
def test_pause_and_resume_while_a_fifo_open_waits(runtime, runsc, tmp_path, make_bundle):
    """pause freezes a process whose FIFO open waits (the sentry lets it go, the kernel
    freezes it); after resume the open waits again and completes when a writer comes."""
    rt = runsc if runtime == "runsc-py" else Runc(tmp_path / "runc-state")
    try:
        bundle = make_bundle("sh", "-c", "cd /tmp && mkfifo f && cat f > out; echo done >> out",
                             readonly=False)
        cid = "p-" + uuid.uuid4().hex[:10]
        assert rt("create", "--bundle", str(bundle.path), cid).returncode == 0
        assert rt("start", cid).returncode == 0
        _wait_for((bundle.rootfs / "tmp" / "out").exists, "the reader")
        time.sleep(0.3)
        r = rt("pause", cid, timeout=30)
        assert r.returncode == 0, r.stderr
        assert json.loads(rt("state", cid).stdout)["status"] == "paused"
        assert rt("resume", cid).returncode == 0
        r = rt("exec", cid, "sh", "-c", "echo hi > /tmp/f", timeout=30)
        assert r.returncode == 0, r.stderr
        _wait_for(lambda: json.loads(rt("state", cid).stdout)["status"] == "stopped",
                  "the container to end")
        assert (bundle.rootfs / "tmp" / "out").read_text() == "hi\ndone\n"
    finally:
        if rt is not runsc:
            rt.cleanup()
