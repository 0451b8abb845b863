"""`runsc-py run`: stdio, exit statuses and signals, as runc gives them."""
from __future__ import annotations

import subprocess
import time

from conftest import probe_lines


def test_exit_status_is_the_workload_status(runsc, make_bundle):
    assert runsc.run(make_bundle("sh", "-c", "exit 7")).returncode == 7
    assert runsc.run(make_bundle("true")).returncode == 0
    assert runsc.run(make_bundle("false")).returncode == 1


def test_stdio_passes_through(runsc, make_bundle):
    r = runsc.run(make_bundle("sh", "-c", "cat; echo err >&2"), input="from stdin\n")
    assert r.returncode == 0
    assert r.stdout == "from stdin\n"
    assert r.stderr == "err\n"


def test_binary_stdio_round_trip(runsc, make_bundle):
    data = bytes(range(256)) * 64
    r = runsc.run(make_bundle("cat"), input=data)
    assert r.returncode == 0 and r.stdout == data


def test_missing_executable_is_a_one_line_error(runsc, make_bundle):
    r = runsc.run(make_bundle("no-such-program"))
    assert r.returncode != 0
    assert r.stderr.strip().count("\n") == 0
    assert "no-such-program" in r.stderr and "not found" in r.stderr
    assert not list(runsc.root.iterdir())


def _wait_status(runsc, cid, want, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = runsc("state", cid)
        if want in r.stdout:
            return
        time.sleep(0.05)
    raise AssertionError(f"{cid} never reached {want}: {r.stdout} {r.stderr}")


def test_kill_term_gives_143(runsc, make_bundle):
    # PID 1 only receives signals it handles (as under runc): the workload traps TERM.
    bundle = make_bundle("sh", "-c", "trap 'exit 143' TERM; while :; do sleep 0.05; done")
    proc = subprocess.Popen(runsc.cmd("run", "--bundle", str(bundle.path), "k143"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait_status(runsc, "k143", '"running"')
    assert runsc("kill", "k143", "TERM").returncode == 0
    assert proc.wait(timeout=20) == 143


def test_kill_9_by_number_gives_137(runsc, make_bundle):
    bundle = make_bundle("sleep", "1000")
    proc = subprocess.Popen(runsc.cmd("run", "--bundle", str(bundle.path), "k137"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait_status(runsc, "k137", '"running"')
    assert runsc("kill", "k137", "9").returncode == 0
    assert proc.wait(timeout=20) == 137


def test_probe_runs(runsc, make_bundle):
    r = runsc.run(make_bundle("probe", "getpid", "getppid", "echo", "x"))
    assert probe_lines(r.stdout) == {"getpid": ["1"], "getppid": ["0"], "echo": ["x"]}
