"""create / state / start / kill / delete / list, as runc has them."""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from conftest import REPO

TRAP_TERM = "trap 'exit 143' TERM; while :; do sleep 0.05; done"
OCI_KEYS = {"ociVersion", "id", "status", "pid", "bundle", "annotations"}


def _cid() -> str:
    return "lc-" + uuid.uuid4().hex[:10]


def created(runsc, bundle, *extra: str) -> str:
    """`create` a container; its ID. Output goes to files: the sentry keeps our stdio, and
    pipes would only reach EOF when the container ends."""
    cid = _cid()
    with tempfile.TemporaryFile() as err:
        r = subprocess.run(runsc.cmd("create", "--bundle", str(bundle.path), *extra, cid),
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                           timeout=60, cwd=REPO)
        err.seek(0)
        assert r.returncode == 0, err.read().decode()
    return cid


def state(runsc, cid: str) -> dict:
    r = runsc("state", cid)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def wait_status(runsc, cid: str, want: str, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        st = state(runsc, cid)
        if st["status"] == want or time.monotonic() > deadline:
            assert st["status"] == want, st
            return st
        time.sleep(0.02)


def recorded_pids(runsc, cid: str) -> list[int]:
    """The sentry, gofer and init pids runsc-py keeps in ROOT/ID/state.json."""
    st = json.loads((runsc.root / cid / "state.json").read_text())
    pids = [st["pid"], st["gofer_pid"], st["init_pid"]]
    assert all(isinstance(p, int) and p > 0 for p in pids), st
    return pids


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def assert_gone(pids: list[int], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [p for p in pids if alive(p)] == []


def assert_one_line_error(r: subprocess.CompletedProcess, *needles: str) -> None:
    assert r.returncode != 0, r
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("runsc-py: "), r.stderr
    assert "Traceback" not in r.stderr
    for needle in needles:
        assert needle in lines[0], r.stderr


def test_full_lifecycle(runsc, make_bundle, tmp_path):
    """The OCI sequence a higher-level runtime drives, with the state it reads at each step."""
    annotations = {"org.example.owner": "tests", "org.example.n": "1"}
    bundle = make_bundle("sh", "-c", TRAP_TERM, annotations=annotations)
    pid_file = tmp_path / "pid"
    cid = created(runsc, bundle, "--pid-file", str(pid_file))

    st = state(runsc, cid)
    assert OCI_KEYS <= st.keys()
    assert st["ociVersion"] == bundle.spec["ociVersion"]
    assert st["id"] == cid
    assert st["status"] == "created"
    assert st["bundle"] == str(bundle.path)
    assert st["annotations"] == annotations
    assert st["pid"] == int(pid_file.read_text())
    assert alive(st["pid"])
    pids = recorded_pids(runsc, cid)
    assert pids[0] == st["pid"]

    r = runsc("start", cid)
    assert r.returncode == 0, r.stderr
    assert state(runsc, cid)["status"] == "running"

    r = runsc("kill", cid, "TERM")
    assert r.returncode == 0, r.stderr
    st = wait_status(runsc, cid, "stopped")
    assert st["annotations"] == annotations

    r = runsc("delete", cid)
    assert r.returncode == 0, r.stderr
    assert not (runsc.root / cid).exists()
    assert_one_line_error(runsc("state", cid), cid)
    assert_gone(pids)


def test_list_shows_the_container(runsc, make_bundle):
    """`list` in both formats is how tools discover containers."""
    bundle = make_bundle("sleep", "1000")
    cid = created(runsc, bundle)
    pid = state(runsc, cid)["pid"]

    r = runsc("list")
    assert r.returncode == 0, r.stderr
    header, *rows = r.stdout.splitlines()
    assert header.split()[:3] == ["ID", "PID", "STATUS"]
    assert [row.split()[:4] for row in rows] == [[cid, str(pid), "created", str(bundle.path)]]

    r = runsc("list", "--format", "json")
    assert r.returncode == 0, r.stderr
    [entry] = json.loads(r.stdout)
    assert (entry["id"], entry["pid"], entry["status"], entry["bundle"]) == (
        cid, pid, "created", str(bundle.path))

    assert runsc("start", cid).returncode == 0
    [entry] = json.loads(runsc("list", "--format", "json").stdout)
    assert entry["status"] == "running"
    assert runsc("delete", "--force", cid).returncode == 0
    assert json.loads(runsc("list", "--format", "json").stdout) == []


def test_start_twice_fails(runsc, make_bundle):
    """A second `start` must not release anything and must say why."""
    cid = created(runsc, make_bundle("sleep", "1000"))
    assert runsc("start", cid).returncode == 0
    assert_one_line_error(runsc("start", cid), "already running")
    assert state(runsc, cid)["status"] == "running"


def test_start_of_a_stopped_container_fails(runsc, make_bundle):
    """A container runs once; after it exits only `delete` applies."""
    cid = created(runsc, make_bundle("true"))
    pids = recorded_pids(runsc, cid)
    assert runsc("start", cid).returncode == 0
    wait_status(runsc, cid, "stopped")
    assert_one_line_error(runsc("start", cid), "stopped")
    assert_one_line_error(runsc("kill", cid, "KILL"), "not running")
    assert runsc("delete", cid).returncode == 0
    assert not (runsc.root / cid).exists()
    assert_gone(pids)


def test_delete_of_a_running_container_needs_force(runsc, make_bundle):
    """Without --force a running container survives `delete`; with it nothing survives."""
    cid = created(runsc, make_bundle("sleep", "1000"))
    pids = recorded_pids(runsc, cid)
    assert runsc("start", cid).returncode == 0

    assert_one_line_error(runsc("delete", cid), "running")
    assert state(runsc, cid)["status"] == "running"
    assert all(alive(p) for p in pids)

    r = runsc("delete", "--force", cid)
    assert r.returncode == 0, r.stderr
    assert not (runsc.root / cid).exists()
    assert_gone(pids)
    assert_one_line_error(runsc("state", cid))


def test_delete_force_of_an_unknown_id_succeeds(runsc):
    """Cleanup code calls `delete --force` blindly, as with runc."""
    r = runsc("delete", "--force", "no-such-container")
    assert (r.returncode, r.stderr) == (0, "")


def test_delete_of_a_created_container_kills_it(runsc, make_bundle):
    """A never-started container is not running: plain `delete` ends its processes."""
    cid = created(runsc, make_bundle("sleep", "1000"))
    pids = recorded_pids(runsc, cid)
    assert all(alive(p) for p in pids)
    r = runsc("delete", cid)
    assert r.returncode == 0, r.stderr
    assert not (runsc.root / cid).exists()
    assert_gone(pids)


def _zombie_or_gone(pid: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            stat = Path(f"/proc/{pid}/stat").read_bytes()
        except FileNotFoundError:
            return
        if stat.rpartition(b") ")[2].startswith(b"Z"):
            return
        time.sleep(0.01)
    raise AssertionError(f"{pid} still running")


def test_a_dead_sentry_is_stopped_before_it_is_reaped(runsc, make_bundle):
    """The sentry is re-parented to the host's init, which may reap it late: runc counts a
    zombie as stopped, so `state` and a plain `delete` must not wait for the reaping."""
    cid = created(runsc, make_bundle("sleep", "1000"))
    pid = recorded_pids(runsc, cid)[0]
    assert runsc("start", cid).returncode == 0
    assert runsc("kill", cid, "KILL").returncode == 0
    _zombie_or_gone(pid)
    assert state(runsc, cid)["status"] == "stopped"
    r = runsc("delete", cid)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("sig", ["KILL", "9", "SIGKILL"])
def test_kill_accepts_signal_spellings(runsc, make_bundle, sig):
    """runc takes a signal by short name, number or full name."""
    cid = created(runsc, make_bundle("sleep", "1000"))
    pids = recorded_pids(runsc, cid)
    assert runsc("start", cid).returncode == 0
    r = runsc("kill", cid, sig)
    assert r.returncode == 0, r.stderr
    wait_status(runsc, cid, "stopped")
    assert_gone(pids)
    assert runsc("delete", cid).returncode == 0


def test_kill_with_an_unknown_signal_is_a_one_line_error(runsc, make_bundle):
    """A typo in the signal must not touch the container."""
    cid = created(runsc, make_bundle("sleep", "1000"))
    assert_one_line_error(runsc("kill", cid, "NOSUCHSIG"), "NOSUCHSIG")
    assert state(runsc, cid)["status"] == "created"
