"""Signals meeting emulated syscalls. An emulated call that Linux never interrupts (chmod,
rename, stat...) completes even when a signal arrives meanwhile, the sandbox's own
activity included (the gofer's change fires a dnotify signal); the signal is delivered
when it returns. A call that legitimately waits (a FIFO open) is interrupted as on Linux:
EINTR without SA_RESTART, restarted with it or after a stop. Each scenario of
tests/signals.c runs under runc and under runsc-py and must print the same."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import REPO, build_static

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
    assert lines(got.stdout) == lines(want.stdout)
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
])
def test_busybox_sh_job_control_as_under_runc(script, runsc, runc, make_bundle):
    bundle = make_bundle("sh", "-c", script, readonly=False)
    want = runc(bundle)
    f = bundle.rootfs / "tmp" / "f"
    if f.exists():
        f.unlink()
    got = runsc.run(bundle, timeout=60)
    assert (got.returncode, got.stdout) == (want.returncode, want.stdout), got.stderr
