"""`runsc-py run`: stdio, exit statuses and signals, as runc gives them."""
from __future__ import annotations

import json
import os
import signal
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


def _state_file(runsc, cid):
    return json.loads((runsc.root / cid / "state.json").read_text())


def _gone(pid, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.02)
    return False


def test_workload_and_gofer_die_with_the_sentry(runsc, make_bundle):
    bundle = make_bundle("sleep", "1000")
    assert runsc("create", "--bundle", str(bundle.path), "dies").returncode == 0
    assert runsc("start", "dies").returncode == 0
    st = _state_file(runsc, "dies")
    os.kill(st["pid"], signal.SIGKILL)
    assert _gone(st["pid"]) and _gone(st["init_pid"]) and _gone(st["gofer_pid"])
    assert '"stopped"' in runsc("state", "dies").stdout


def test_sandbox_stops_when_the_gofer_dies(runsc, make_bundle):
    bundle = make_bundle("sh", "-c", "while :; do ls / > /dev/null; done")
    proc = subprocess.Popen(runsc.cmd("run", "--bundle", str(bundle.path), "gofer"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait_status(runsc, "gofer", '"running"')
    st = _state_file(runsc, "gofer")
    os.kill(st["gofer_pid"], signal.SIGKILL)
    assert proc.wait(timeout=20) != 0
    assert _gone(st["init_pid"]) and _gone(st["pid"])


def test_failure_is_the_last_line_of_the_json_log(runsc, make_bundle, tmp_path):
    log = tmp_path / "log.json"
    bundle = make_bundle("no-such-program")
    r = runsc("--log", str(log), "--log-format", "json", "create", "--bundle",
              str(bundle.path), "failing")
    assert r.returncode == 1
    last = json.loads(log.read_text().splitlines()[-1])
    assert last["level"] == "error"
    assert "no-such-program" in last["msg"] and "time" in last
