"""The runc contract as containerd's shim and Docker call it, on the CLI directly: OCI hooks,
console sockets, exec with a pid file, ps, update, pause/resume, the JSON log's error
line, and install/uninstall of Docker's daemon.json."""
from __future__ import annotations

import json
import os
import select
import socket
import time
import uuid
from pathlib import Path

import pytest

HOOKS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart",
         "poststop")


def _cid() -> str:
    return "k-" + uuid.uuid4().hex[:10]


def _wait_for(predicate, timeout: float = 20, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _state(runsc, cid: str) -> dict:
    r = runsc("state", cid)
    assert r.returncode == 0, r
    return json.loads(r.stdout)


def _running(runsc, make_bundle, *args: str, **kw) -> str:
    bundle = make_bundle(*(args or ("sleep", "1000")), **kw)
    cid = _cid()
    assert runsc("create", "--bundle", str(bundle.path), cid).returncode == 0
    assert runsc("start", cid).returncode == 0
    return cid


# -- hooks ---------------------------------------------------------------------------

def _hook(log: Path, kind: str, fail: bool = False) -> dict:
    """A hook that appends its kind and the state it got on stdin as one JSON line."""
    script = (f'printf \'{{"hook": "%s", "env": "%s", "state": %s}}\\n\' "$1" "$HOOK_ENV" '
              f'"$(cat)" >> {log}' + ("; echo broken >&2; exit 3" if fail else ""))
    return {"path": "/bin/sh", "args": ["sh", "-c", script, "hook", kind],
            "env": [f"HOOK_ENV=env-of-{kind}"]}


def test_hooks_run_in_order_with_the_state_on_stdin(runsc, make_bundle, tmp_path):
    log = tmp_path / "hooks.log"
    bundle = make_bundle("true")
    bundle.spec["hooks"] = {kind: [_hook(log, kind)] for kind in HOOKS}
    bundle.write()
    cid = _cid()
    assert runsc("create", "--bundle", str(bundle.path), cid).returncode == 0
    assert runsc("start", cid).returncode == 0
    _wait_for(lambda: _state(runsc, cid)["status"] == "stopped", what="the container to stop")
    assert runsc("delete", cid).returncode == 0
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    # runc's order: prestart and createRuntime at create, then createContainer;
    # startContainer and poststart at start; poststop at delete.
    assert [c["hook"] for c in calls] == ["createRuntime", "prestart", "createContainer",
                                          "startContainer", "poststart", "poststop"]
    for call in calls:
        assert call["env"] == f"env-of-{call['hook']}"
        state = call["state"]
        assert state["id"] == cid and state["bundle"] == str(bundle.path)
        assert state["ociVersion"]
    statuses = {c["hook"]: c["state"]["status"] for c in calls}
    assert statuses == {"createRuntime": "creating", "prestart": "creating",
                        "createContainer": "creating", "startContainer": "created",
                        "poststart": "running", "poststop": "stopped"}
    assert all(c["state"]["pid"] > 0 for c in calls if c["hook"] != "poststop")


@pytest.mark.parametrize("kind", ["prestart", "createRuntime", "createContainer"])
def test_a_failing_create_hook_fails_create_and_leaves_nothing(runsc, make_bundle,
                                                               tmp_path, kind):
    bundle = make_bundle("sleep", "1000")
    bundle.spec["hooks"] = {kind: [_hook(tmp_path / "log", kind, fail=True)]}
    bundle.write()
    cid = _cid()
    r = runsc("create", "--bundle", str(bundle.path), cid)
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and kind in lines[0] and "broken" in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    assert not (runsc.root / cid).exists()
    assert not [d for d in Path("/sys/fs/cgroup").glob(f"*/runsc-py/{cid}")]


def test_a_failing_poststart_hook_only_warns(runsc, make_bundle, tmp_path):
    bundle = make_bundle("true")
    bundle.spec["hooks"] = {"poststart": [_hook(tmp_path / "log", "poststart", fail=True)]}
    bundle.write()
    assert runsc.run(bundle).returncode == 0


def test_a_hook_that_outlives_its_timeout_fails(runsc, make_bundle):
    bundle = make_bundle("true")
    bundle.spec["hooks"] = {"prestart": [{"path": "/bin/sleep", "args": ["sleep", "30"],
                                          "timeout": 1}]}
    bundle.write()
    began = time.monotonic()
    r = runsc("create", "--bundle", str(bundle.path), _cid())
    assert r.returncode != 0 and "timed out" in r.stderr, r
    assert time.monotonic() - began < 20


# -- terminals -----------------------------------------------------------------------

class ConsoleSocket:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(1)
        self.listener.settimeout(30)

    def master(self) -> int:
        conn, _ = self.listener.accept()
        with conn:
            _msg, fds, _flags, _addr = socket.recv_fds(conn, 4096, 1)
        assert len(fds) == 1
        return fds[0]


def _read_until(fd: int, needle: bytes, timeout: float = 20) -> bytes:
    out = b""
    deadline = time.monotonic() + timeout
    while needle not in out:
        left = deadline - time.monotonic()
        assert left > 0, out
        if select.select([fd], [], [], left)[0]:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: every slave is closed
                break
            if not chunk:
                break
            out += chunk
    return out


def test_create_with_a_console_socket(runsc, make_bundle, tmp_path):
    bundle = make_bundle("sh", "-c", "test -t 0 && echo isatty; stty size; tty; sleep 1000")
    bundle.spec["process"]["terminal"] = True
    bundle.spec["process"]["consoleSize"] = {"height": 30, "width": 100}
    bundle.write()
    console = ConsoleSocket(tmp_path / "console.sock")
    cid = _cid()
    r = runsc("create", "--bundle", str(bundle.path), "--console-socket",
              str(console.path), cid)
    assert r.returncode == 0, r
    master = console.master()
    try:
        assert runsc("start", cid).returncode == 0
        out = _read_until(master, b"/dev/pts/0\r\n").decode()
        assert out.split() == ["isatty", "30", "100", "/dev/pts/0"], out
    finally:
        os.close(master)


def test_exec_with_a_console_socket(runsc, make_bundle, tmp_path):
    cid = _running(runsc, make_bundle)
    process = tmp_path / "process.json"
    process.write_text(json.dumps({"terminal": True, "args": ["sh"], "cwd": "/",
                                   "env": ["PATH=/bin"]}))
    console = ConsoleSocket(tmp_path / "exec.sock")
    r = runsc("exec", "--process", str(process), "--console-socket", str(console.path),
              "--detach", "--pid-file", str(tmp_path / "exec.pid"), cid)
    assert r.returncode == 0, r
    master = console.master()
    try:
        os.write(master, b"test -t 1 && echo is-a-tty; echo pid1=$(cat /proc/1/comm)\n")
        out = _read_until(master, b"pid1=sleep").decode()
        assert "is-a-tty" in out, out
        os.write(master, b"exit 3\n")
    finally:
        os.close(master)


# -- exec, ps, update, pause ---------------------------------------------------------

def _exit_status_of(pid: int, timeout: float = 20) -> None:
    fd = os.pidfd_open(pid)
    try:
        assert select.select([fd], [], [], timeout)[0], f"{pid} still runs"
    finally:
        os.close(fd)


def test_exec_detached_pid_file_names_a_process_that_ends_with_it(runsc, make_bundle,
                                                                  tmp_path):
    cid = _running(runsc, make_bundle)
    pid_file = tmp_path / "exec.pid"
    process = tmp_path / "process.json"
    process.write_text(json.dumps({"args": ["sh", "-c", "sleep 1; exit 4"], "cwd": "/",
                                   "env": ["PATH=/bin"]}))
    r = runsc("exec", "--process", str(process), "--detach", "--pid-file", str(pid_file), cid)
    assert r.returncode == 0, r
    pid = int(pid_file.read_text())
    assert os.path.isdir(f"/proc/{pid}")
    _exit_status_of(pid)
    # Without --detach the exec'd process's status is runsc-py exec's own.
    assert runsc("exec", cid, "sh", "-c", "exit 4").returncode == 4
    r = runsc("exec", cid, "sh", "-c", "ps -o pid,comm | sed -n 2p")
    assert r.stdout.split() == ["1", "sleep"], r


def test_exec_into_an_unknown_or_stopped_container_is_an_error(runsc, make_bundle):
    r = runsc("exec", "no-such-container", "true")
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1, r
    bundle = make_bundle("true")
    cid = _cid()
    assert runsc("create", "--bundle", str(bundle.path), cid).returncode == 0
    assert runsc("start", cid).returncode == 0
    _wait_for(lambda: _state(runsc, cid)["status"] == "stopped")
    r = runsc("exec", cid, "true")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r


def test_ps_json_lists_the_host_pids(runsc, make_bundle):
    cid = _running(runsc, make_bundle, "sh", "-c", "sleep 1000 & sleep 1000 & wait")
    _wait_for(lambda: len(json.loads(runsc("ps", "--format", "json", cid).stdout)) == 3)
    pids = json.loads(runsc("ps", "--format", "json", cid).stdout)
    assert all(isinstance(p, int) and os.path.isdir(f"/proc/{p}") for p in pids)
    assert _state(runsc, cid)["pid"] not in pids  # the sentry is not a container process
    r = runsc("ps", "--format", "json", "no-such-container")
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1, r


def test_update_resources_from_stdin(runsc, make_bundle):
    bundle = make_bundle("sleep", "1000")
    bundle.spec["linux"]["resources"] = {"memory": {"limit": 128 * 1024 * 1024}}
    bundle.write()
    cid = _cid()
    assert runsc("create", "--bundle", str(bundle.path), cid).returncode == 0
    assert runsc("start", cid).returncode == 0
    r = runsc("update", "--resources", "-", cid,
              input=json.dumps({"memory": {"limit": 200 * 1024 * 1024}}))
    assert r.returncode == 0, r
    free = runsc("exec", cid, "free", "-m").stdout
    assert free.splitlines()[1].split()[1] == "200", free
    r = runsc("update", "--resources", "-", cid, input="{not json")
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1, r


def test_pause_freezes_and_resume_thaws(runsc, make_bundle):
    cid = _running(runsc, make_bundle, "sh", "-c",
                   "i=0; while true; do i=$((i+1)); echo $i > /tmp/n; sleep 0.05; done",
                   readonly=False)
    counter = lambda: int(runsc("exec", cid, "cat", "/tmp/n").stdout or 0)  # noqa: E731
    _wait_for(lambda: counter() > 0)
    assert runsc("pause", cid).returncode == 0
    assert _state(runsc, cid)["status"] == "paused"
    rootfs_counter = Path(_state(runsc, cid)["bundle"]) / "rootfs" / "tmp" / "n"
    frozen = rootfs_counter.read_text()
    time.sleep(0.5)
    assert rootfs_counter.read_text() == frozen
    assert runsc("resume", cid).returncode == 0
    assert _state(runsc, cid)["status"] == "running"
    _wait_for(lambda: rootfs_counter.read_text() != frozen, what="the counter to move")
    assert runsc("resume", cid).returncode != 0  # not paused any more


def test_kill_of_a_paused_container(runsc, make_bundle):
    cid = _running(runsc, make_bundle)
    assert runsc("pause", cid).returncode == 0
    assert runsc("kill", cid, "KILL").returncode == 0
    _wait_for(lambda: _state(runsc, cid)["status"] == "stopped")


# -- the JSON log --------------------------------------------------------------------

def test_failing_create_ends_the_json_log_with_an_error(runsc, make_bundle, tmp_path):
    bundle = make_bundle("true")
    bundle.spec["root"]["path"] = "no-such-rootfs"
    bundle.write()
    log = tmp_path / "log.json"
    r = runsc("--log", str(log), "--log-format", "json", "create", "--bundle",
              str(bundle.path), _cid())
    assert r.returncode != 0
    last = json.loads(log.read_text().splitlines()[-1])
    assert last["level"] == "error" and "no-such-rootfs" in last["msg"], last


# -- Docker's daemon.json -------------------------------------------------------------

def test_install_and_uninstall_keep_the_rest_of_daemon_json(runsc, tmp_path):
    path = tmp_path / "daemon.json"
    path.write_text(json.dumps({"log-level": "warn", "runtimes": {"other": {"path": "/x"}}}))
    r = runsc("install", "--config-file", str(path), "--", "--debug")
    assert r.returncode == 0, r
    doc = json.loads(path.read_text())
    assert doc["log-level"] == "warn" and doc["runtimes"]["other"] == {"path": "/x"}
    entry = doc["runtimes"]["runsc-py"]
    assert os.access(entry["path"], os.X_OK) and entry["runtimeArgs"] == ["--debug"]
    assert runsc("install", "--config-file", str(path), "--", "--debug").returncode == 0
    assert json.loads(path.read_text()) == doc  # idempotent
    assert runsc("install", "--config-file", str(path), "--runtime", "sandboxed").returncode == 0
    assert runsc("uninstall", "--config-file", str(path)).returncode == 0
    doc = json.loads(path.read_text())
    assert set(doc["runtimes"]) == {"other", "sandboxed"} and doc["log-level"] == "warn"


def test_install_refuses_a_malformed_daemon_json(runsc, tmp_path):
    path = tmp_path / "daemon.json"
    path.write_text("{ not json")
    r = runsc("install", "--config-file", str(path))
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1, r
    assert "Traceback" not in r.stderr
    assert path.read_text() == "{ not json"
