"""The runc contract as Docker's and containerd's runc shim call it, on the runsc-py CLI
directly (no daemon): OCI hooks, exec with a pid file, console sockets, ps --format json,
update from stdin, pause/resume, the JSON log's error line, and install/uninstall of
Docker's daemon.json. runc runs the same bundles with the same commands and is the
reference.

Known, deliberate differences from runc 1.1 (Debian 12's):
- runc 1.1 runs poststart hooks during `create` (before the process starts; fixed in
  runc by opencontainers/runc#5186); runsc-py runs them after `start`, as the runtime spec
  says, and they see status "running".
- runc runs createContainer and startContainer hooks in the container's namespaces (the
  state's pid is then 1 and startContainer resolves paths in the container); runsc-py runs
  them in the runtime's (README), where the pid is the sentry's.
"""
from __future__ import annotations

import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import pytest
from conftest import Runtime

HOOKS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart",
         "poststop")
LEAK = {**os.environ, "LEAK_CHECK": "leaked"}  # the runtime's environment in hook tests


class Runc(Runtime):
    """runc with a private --root, called exactly as runsc-py is."""

    def cmd(self, *args: str) -> list[str]:
        return ["runc", "--root", str(self.root), *args]


@pytest.fixture
def runc_cli(tmp_path):
    if not shutil.which("runc"):
        pytest.fail("runc is not installed (the test set-up installs it from Debian)")
    rt = Runc(tmp_path / "runc-state")
    yield rt
    rt.cleanup()


def _cid() -> str:
    return "k-" + uuid.uuid4().hex[:10]


def _wait_for(predicate, timeout: float = 20, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _state(rt: Runtime, cid: str) -> dict:
    r = rt("state", cid)
    assert r.returncode == 0, r
    return json.loads(r.stdout)


def _up(rt: Runtime, bundle, *create_args: str, **kw) -> str:
    cid = _cid()
    r = rt("create", "--bundle", str(bundle.path), *create_args, cid, **kw)
    assert r.returncode == 0, r
    r = rt("start", cid, **kw)
    assert r.returncode == 0, r
    return cid


def _one_line_error(r: subprocess.CompletedProcess) -> str:
    assert r.returncode != 0, r
    assert "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    return lines[0]


def _detached(rt: Runtime, *args: str) -> subprocess.CompletedProcess:
    """A call whose detached process keeps the caller's stdio (exec --detach, as under
    runc): files, not pipes, or reading the output would wait for that process."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        r = subprocess.run(rt.cmd(*args), stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                           timeout=60)
        out.seek(0)
        err.seek(0)
        r.stdout, r.stderr = out.read().decode(), err.read().decode()
    return r


def _ps(rt: Runtime, cid: str) -> list[int]:
    r = rt("ps", "--format", "json", cid)
    assert r.returncode == 0, r
    return json.loads(r.stdout)


def _alive(pid: int) -> bool:
    """Running, not a zombie (which the container's init may be until its parent reaps)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(") ")[2].split()[0] not in ("Z", "X")


def _processes_naming(text: str) -> list[int]:
    """Host processes whose command line contains text (the sentry and gofer are forks of
    the runsc-py command, whose arguments name the container)."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != os.getpid():
            try:
                if text.encode() in Path(f"/proc/{name}/cmdline").read_bytes() and \
                        _alive(int(name)):
                    found.append(int(name))
            except OSError:
                continue
    return found


def _cgroups_of(cid: str) -> list[Path]:
    return list(Path("/sys/fs/cgroup").glob(f"*/runsc-py/{cid}")) + \
        list(Path("/sys/fs/cgroup").glob(f"runsc-py/{cid}"))


def _assert_nothing_left(rt: Runtime, cid: str) -> None:
    assert not (rt.root / cid).exists(), os.listdir(rt.root)
    assert rt("list", "-q").stdout.split() == []
    assert not _processes_naming(cid)  # gone by the time the command returned
    assert not _cgroups_of(cid)


# -- hooks ---------------------------------------------------------------------------

def _hook(log: Path, name: str, fail: bool = False, env: bool = True) -> dict:
    """A /bin/sh hook that appends one JSON line: its name ($1), all its args, its env,
    whether it inherited the runtime's environment, its cwd and the state from stdin."""
    script = ("printf '{\"hook\": \"%s\", \"args\": \"%s\", \"env\": \"%s\", \"leak\": \"%s\", "
              "\"cwd\": \"%s\", \"state\": %s}\\n' \"$1\" \"$*\" \"$HOOK_ENV\" "
              f"\"${{LEAK_CHECK:-unset}}\" \"$(pwd)\" \"$(cat)\" >> {log}")
    if fail:
        script += "; printf 'broken hook\\nsecond line\\n' >&2; exit 3"
    hook = {"path": "/bin/sh", "args": ["sh", "-c", script, "hook", name, "extra-arg"]}
    if env:
        hook["env"] = [f"HOOK_ENV=env-of-{name}"]
    return hook


def _hook_bundle(make_bundle, log: Path, args=("true",)):
    """Every kind of hook (prestart twice: the second one without env) logging to log,
    whose directory is bind-mounted at the same path in the container, so that runc's
    startContainer hook (run inside the container) writes to the same file."""
    bundle = make_bundle(*args)
    bundle.spec["hooks"] = {kind: [_hook(log, kind)] for kind in HOOKS}
    bundle.spec["hooks"]["prestart"].append(_hook(log, "prestart-no-env", env=False))
    bundle.spec["mounts"].append({"destination": str(log.parent), "type": "bind",
                                  "source": str(log.parent), "options": ["rbind", "rw"]})
    return bundle.write()


def _hook_lifecycle(rt: Runtime, bundle, log: Path) -> tuple[str, int, dict[str, list]]:
    """create, start, wait for the exit, delete; the hook calls of each step."""
    seen = 0

    def calls() -> list[dict]:
        nonlocal seen
        lines = log.read_text().splitlines() if log.exists() else []
        new, seen = lines[seen:], len(lines)
        return [json.loads(line) for line in new]

    cid = _cid()
    r = rt("create", "--bundle", str(bundle.path), cid, env=LEAK)
    assert r.returncode == 0, r
    pid = _state(rt, cid)["pid"]
    phases = {"create": calls()}
    assert rt("start", cid, env=LEAK).returncode == 0
    _wait_for(lambda: _state(rt, cid)["status"] == "stopped", what="the container to stop")
    phases["start"] = calls()
    r = rt("delete", cid, env=LEAK)
    assert r.returncode == 0, r
    phases["delete"] = calls()
    return cid, pid, phases


def test_hooks_run_in_runc_order_with_the_state_on_stdin(runsc, runc_cli, make_bundle,
                                                         tmp_path):
    (tmp_path / "hooklogs").mkdir()
    results = {}
    for name, rt in (("runc", runc_cli), ("runsc-py", runsc)):
        log = tmp_path / "hooklogs" / f"{name}.log"
        bundle = _hook_bundle(make_bundle, log)
        results[name] = (bundle, *_hook_lifecycle(rt, bundle, log))

    def order(phases, drop_poststart=True):
        return {step: [c["hook"] for c in calls
                       if not (drop_poststart and c["hook"] == "poststart")]
                for step, calls in phases.items()}

    _, _, _, runc_phases = results["runc"]
    bundle, cid, pid, phases = results["runsc-py"]
    # The same hooks at the same steps (prestart, its env-less twin, createRuntime and
    # createContainer at create; startContainer at start; poststop at delete)...
    assert order(phases) == order(runc_phases) == {
        "create": ["prestart", "prestart-no-env", "createRuntime", "createContainer"],
        "start": ["startContainer"], "delete": ["poststop"]}
    # ...and poststart after the process started (runc 1.1: during create, see above).
    assert order(phases, False)["start"] == ["startContainer", "poststart"]

    runc_calls = {c["hook"]: c for calls in runc_phases.values() for c in calls}
    calls = {c["hook"]: c for step in phases.values() for c in step}
    for hook, call in calls.items():
        reference = runc_calls[hook]
        # args and env as the hook gives them; no env inherits the runtime's environment.
        assert call["args"] == reference["args"] == f"{hook} extra-arg"
        assert call["leak"] == reference["leak"] == (
            "leaked" if hook == "prestart-no-env" else "unset"), hook
        assert call["env"] == reference["env"], hook
        state = call["state"]
        assert state["id"] == cid and state["bundle"] == str(bundle.path), state
        assert state["ociVersion"] and reference["state"]["ociVersion"]
        if hook != "poststart":
            assert state["status"] == reference["state"]["status"], hook
    assert {h: c["state"]["status"] for h, c in calls.items()} == {
        "prestart": "creating", "prestart-no-env": "creating", "createRuntime": "creating",
        "createContainer": "creating", "startContainer": "created", "poststart": "running",
        "poststop": "stopped"}
    # The runtime-namespace create hooks get the pid `state` reports and run in the bundle.
    runc_bundle, _, runc_pid, _ = results["runc"]
    for hook in ("prestart", "prestart-no-env", "createRuntime"):
        assert calls[hook]["state"]["pid"] == pid > 0
        assert runc_calls[hook]["state"]["pid"] == runc_pid > 0
        assert calls[hook]["cwd"] == str(bundle.path)
        assert runc_calls[hook]["cwd"] == str(runc_bundle.path)
    assert calls["startContainer"]["state"]["pid"] > 0
    assert calls["poststart"]["state"]["pid"] == pid
    assert calls["poststop"]["state"].get("pid", 0) == 0
    assert runc_calls["poststop"]["state"].get("pid", 0) == 0


@pytest.mark.parametrize("kind", ["prestart", "createRuntime", "createContainer"])
def test_a_failing_create_hook_fails_create_and_leaves_nothing(runsc, runc_cli, make_bundle,
                                                               tmp_path, kind):
    log = tmp_path / "hooks.log"
    bundle = make_bundle("sleep", "1000")
    bundle.spec["hooks"] = {kind: [_hook(log, kind, fail=True)]}
    bundle.write()
    cid = _cid()
    r = runsc("create", "--bundle", str(bundle.path), cid)
    line = _one_line_error(r)
    assert kind in line and "/bin/sh" in line and "broken hook" in line, line
    # The hook ran with a live sandbox (its pid in the state), which is gone now.
    sentry_pid = json.loads(log.read_text().splitlines()[0])["state"]["pid"]
    assert sentry_pid > 0 and not _alive(sentry_pid)
    _assert_nothing_left(runsc, cid)
    # runc fails the same create, and keeps nothing either.
    r = runc_cli("create", "--bundle", str(bundle.path), cid)
    assert r.returncode != 0
    assert runc_cli("list", "-q").stdout.split() == []


def test_a_failing_poststart_or_poststop_hook_only_warns(runsc, make_bundle, tmp_path):
    bundle = make_bundle("sleep", "1000")
    bundle.spec["hooks"] = {kind: [_hook(tmp_path / "hooks.log", kind, fail=True)]
                            for kind in ("poststart", "poststop")}
    bundle.write()
    log = tmp_path / "runtime.json"
    cid = _cid()
    assert runsc("create", "--bundle", str(bundle.path), cid).returncode == 0
    r = runsc("--log", str(log), "--log-format", "json", "start", cid)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r
    assert _state(runsc, cid)["status"] == "running"
    r = runsc("--log", str(log), "--log-format", "json", "delete", "--force", cid)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r
    assert not (runsc.root / cid).exists()
    warnings = [json.loads(line)["msg"] for line in log.read_text().splitlines()
                if json.loads(line)["level"] == "warn"]
    assert [w.split()[0] for w in warnings] == ["poststart", "poststop"], warnings
    assert all("broken hook" in w for w in warnings)
    assert [json.loads(line)["hook"] for line in
            (tmp_path / "hooks.log").read_text().splitlines()] == ["poststart", "poststop"]


def test_a_hook_that_outlives_its_timeout_fails_create(runsc, make_bundle):
    bundle = make_bundle("true")
    marker = f"{time.time_ns() % 10**9}.5"  # a unique sleep argument to find it by
    bundle.spec["hooks"] = {"createRuntime": [{"path": "/bin/sleep",
                                               "args": ["sleep", marker], "timeout": 1}]}
    bundle.write()
    cid = _cid()
    began = time.monotonic()
    line = _one_line_error(runsc("create", "--bundle", str(bundle.path), cid))
    assert "createRuntime" in line and "timed out" in line, line
    assert time.monotonic() - began < 15
    assert not _processes_naming(marker)  # the hook was killed
    _assert_nothing_left(runsc, cid)


def test_a_failing_start_container_hook_fails_start_and_stops_it(runsc, runc_cli, make_bundle,
                                                                tmp_path):
    bundle = make_bundle("sleep", "1000")
    bundle.spec["hooks"] = {"startContainer": [_hook(tmp_path / "hooks.log", "startContainer",
                                                     fail=True)]}
    bundle.write()
    for rt in (runc_cli, runsc):
        cid = _cid()
        assert rt("create", "--bundle", str(bundle.path), cid).returncode == 0
        r = rt("start", cid)
        if rt is runsc:  # runc runs the hook in the container, after `start` returned
            line = _one_line_error(r)
            assert "startContainer" in line and "broken hook" in line, line
        _wait_for(lambda: _state(rt, cid)["status"] == "stopped",  # noqa: B023
                  what="the container to stop")
        assert rt("delete", cid).returncode == 0
    _assert_nothing_left(runsc, cid)


@pytest.mark.parametrize("hook", [{"path": "/bin/true", "timeout": "5"},
                                  {"path": "/bin/true", "timeout": 0},
                                  {"path": "/bin/true", "args": "true"},
                                  {"path": "/bin/true", "env": ["A=1", 2]},
                                  {"args": ["true"]}])
def test_a_malformed_hook_is_a_one_line_error(runsc, make_bundle, hook):
    bundle = make_bundle("true")
    bundle.spec["hooks"] = {"createRuntime": [hook]}
    bundle.write()
    cid = _cid()
    assert "hooks.createRuntime" in _one_line_error(
        runsc("create", "--bundle", str(bundle.path), cid))
    _assert_nothing_left(runsc, cid)


def test_a_hook_that_cannot_run_is_a_one_line_error(runsc, make_bundle):
    bundle = make_bundle("true")
    bundle.spec["hooks"] = {"prestart": [{"path": "/no/such/hook"}]}
    bundle.write()
    cid = _cid()
    line = _one_line_error(runsc("create", "--bundle", str(bundle.path), cid))
    assert "prestart hook /no/such/hook" in line and "No such file" in line, line
    _assert_nothing_left(runsc, cid)


# -- exec ----------------------------------------------------------------------------

def _process_json(path: Path, *args: str, terminal: bool = False, **more) -> Path:
    """An OCI process document, as a shim writes one for `exec --process`."""
    path.write_text(json.dumps({"terminal": terminal, "args": list(args), "cwd": "/",
                                "env": ["PATH=/bin", "TERM=xterm"],
                                "user": {"uid": 0, "gid": 0}, **more}))
    return path


def _readable(fd: int, timeout: float) -> bool:
    return bool(select.select([fd], [], [], timeout)[0])


def test_exec_detached_pid_file_names_a_process_that_ends_with_it(runsc, make_bundle,
                                                                  tmp_path):
    bundle = make_bundle("sleep", "1000", readonly=False)
    cid = _up(runsc, bundle)
    process = _process_json(tmp_path / "p.json", "sh", "-c",
                            "touch /tmp/exec-began; "
                            "while [ ! -e /tmp/go ]; do sleep 0.05; done; exit 4")
    pid_file = tmp_path / "exec.pid"
    r = _detached(runsc, "exec", "--process", str(process), "--detach", "--pid-file",
                  str(pid_file), cid)
    assert r.returncode == 0, r
    pid = int(pid_file.read_text())
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # a host process, not ours
    pidfd = os.pidfd_open(pid)
    try:
        _wait_for(lambda: (bundle.rootfs / "tmp" / "exec-began").exists(), what="the exec")
        assert not _readable(pidfd, 0.2), "the pid file's process ended before the exec'd one"
        (bundle.rootfs / "tmp" / "go").touch()
        assert _readable(pidfd, 20), "the pid file's process outlived the exec'd one"
    finally:
        os.close(pidfd)
    # Without --detach the exec'd process's status is the command's own.
    assert runsc("exec", cid, "sh", "-c", "exit 4").returncode == 4


SUBREAPER = textwrap.dedent("""\
    # As containerd's shim: a subreaper runs `exec --detach --pid-file` with its output
    # going to a file, then reaps the process the pid file names and prints its status.
    import ctypes, os, subprocess, sys
    ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    with open(sys.argv[2], "w") as out:
        if subprocess.run(sys.argv[3:], stdin=subprocess.DEVNULL, stdout=out).returncode:
            sys.exit(100)
    _, status = os.waitpid(int(open(sys.argv[1]).read()), 0)
    print(os.waitstatus_to_exitcode(status))
""")


def test_exec_pid_file_process_exits_with_the_status_as_runc(runsc, runc_cli, make_bundle,
                                                            tmp_path):
    results = {}
    for name, rt in (("runc", runc_cli), ("runsc-py", runsc)):
        cid = _up(rt, make_bundle("sleep", "1000"))
        pid_file, out = tmp_path / f"{name}.pid", tmp_path / f"{name}.out"
        for code in ("0", "7"):
            process = _process_json(tmp_path / "p.json", "sh", "-c",
                                    f"echo out-{code}; exit {code}")
            r = subprocess.run([sys.executable, "-c", SUBREAPER, str(pid_file), str(out),
                                *rt.cmd("exec", "--process", str(process), "--detach",
                                        "--pid-file", str(pid_file), cid)],
                               capture_output=True, text=True, timeout=60)
            assert r.returncode == 0, r
            results.setdefault(name, []).append((int(r.stdout), out.read_text()))
    assert results["runsc-py"] == results["runc"] == [(0, "out-0\n"), (7, "out-7\n")]


def test_signals_to_the_exec_pid_reach_the_process_as_runc(runsc, runc_cli, make_bundle,
                                                           tmp_path):
    for rt in (runc_cli, runsc):
        cid = _up(rt, make_bundle("sleep", "1000"))
        init = _ps(rt, cid)
        for sig in (signal.SIGTERM, signal.SIGKILL):  # as a shim kills an exec
            process = _process_json(tmp_path / "p.json", "sleep", "999")
            pid_file = tmp_path / "exec.pid"
            r = _detached(rt, "exec", "--process", str(process), "--detach", "--pid-file",
                          str(pid_file), cid)
            assert r.returncode == 0, r
            assert len(_ps(rt, cid)) == 2
            os.kill(int(pid_file.read_text()), sig)
            _wait_for(lambda: _ps(rt, cid) == init,  # noqa: B023
                      what=f"the exec'd process to end by {sig!r}")
        assert _state(rt, cid)["status"] == "running"


def test_exec_process_json_user_cwd_env_and_stdin_as_runc(runsc, runc_cli, make_bundle,
                                                          tmp_path):
    process = _process_json(tmp_path / "p.json", "sh", "-c",
                            "id -u; id -g; pwd; echo $FOO; cat",
                            user={"uid": 1000, "gid": 1000}, cwd="/tmp",
                            env=["PATH=/bin", "FOO=bar"])
    outputs = []
    for rt in (runc_cli, runsc):
        cid = _up(rt, make_bundle("sleep", "1000"))
        r = rt("exec", "--process", str(process), cid, input="piped in\n")
        assert r.returncode == 0, r
        outputs.append(r.stdout)
    assert outputs[1] == outputs[0] == "1000\n1000\n/tmp\nbar\npiped in\n"


def test_exec_sees_the_same_pids_and_files_as_runc(runsc, runc_cli, make_bundle):
    seen = {}
    for name, rt in (("runc", runc_cli), ("runsc-py", runsc)):
        bundle = make_bundle("sh", "-c", "echo from-init > /tmp/shared; exec sleep 1000",
                             readonly=False)
        cid = _up(rt, bundle)
        shared = bundle.rootfs / "tmp" / "shared"
        _wait_for(shared.exists, what="init's file")
        r = rt("exec", cid, "sh", "-c", "cat /tmp/shared; ps -o pid,comm; cat /proc/1/cmdline")
        assert r.returncode == 0, r
        seen[name] = r.stdout
        # No terminal: /dev/tty is ENXIO, as under runc.
        r = rt("exec", cid, "sh", "-c", "echo x > /dev/tty")
        assert r.returncode != 0 and "No such device or address" in r.stderr, r
    lines = seen["runsc-py"].splitlines()
    assert lines[0] == "from-init"
    assert lines[1].split() == ["PID", "COMMAND"] and lines[2].split() == ["1", "sleep"]
    assert any(line.split()[1:] == ["ps"] for line in lines[3:-1]), lines
    assert lines[-1] == "sleep\0" "1000\0"
    reference = seen["runc"].splitlines()
    assert lines[:3] == reference[:3] and lines[-1] == reference[-1], seen


def test_exec_into_an_unknown_or_stopped_container_is_an_error(runsc, runc_cli, make_bundle,
                                                               tmp_path):
    process = _process_json(tmp_path / "p.json", "true")
    pid_file = tmp_path / "x.pid"
    for rt in (runc_cli, runsc):
        cid = _up(rt, make_bundle("true"))
        _wait_for(lambda: _state(rt, cid)["status"] == "stopped")  # noqa: B023
        for target in ("no-such-container", cid):
            for r in (rt("exec", target, "true"),
                      _detached(rt, "exec", "--process", str(process), "--detach",
                                "--pid-file", str(pid_file), target)):
                if rt is runsc:
                    assert target in _one_line_error(r)
                else:
                    assert r.returncode != 0, r
    assert not pid_file.exists()


# -- terminals -----------------------------------------------------------------------

class ConsoleSocket:
    """The shim's side of --console-socket: a unix listener that receives the pty master."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(1)
        self.listener.settimeout(30)

    def master(self) -> int:
        conn, _ = self.listener.accept()
        with conn:
            _msg, fds, _flags, _addr = socket.recv_fds(conn, 4096, 4)
        self.listener.close()
        assert len(fds) == 1
        assert os.isatty(fds[0])
        return fds[0]


def _read_until(fd: int, needle: bytes, timeout: float = 20) -> bytes:
    out = b""
    deadline = time.monotonic() + timeout
    while needle not in out:
        left = deadline - time.monotonic()
        assert left > 0, f"no {needle!r} in {out!r}"
        if _readable(fd, left):
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: every slave is closed
                break
            if not chunk:
                break
            out += chunk
    return out


CONSOLE_SCRIPT = ("test -t 0 && echo isatty; stty size; tty; echo ctty > /dev/tty; "
                  "trap 'echo got-int; exit 0' INT; echo ready; while :; do sleep 1; done")


def _console_session(rt: Runtime, make_bundle, tmp_path: Path, name: str) -> str:
    bundle = make_bundle("sh", "-c", CONSOLE_SCRIPT)
    bundle.spec["process"]["terminal"] = True
    bundle.spec["process"]["consoleSize"] = {"height": 30, "width": 100}
    bundle.write()
    console = ConsoleSocket(tmp_path / f"{name}.sock")
    cid = _cid()
    r = rt("create", "--bundle", str(bundle.path), "--console-socket", str(console.path), cid)
    assert r.returncode == 0, r
    master = console.master()
    try:
        assert rt("start", cid).returncode == 0
        out = _read_until(master, b"ready\r\n")
        os.write(master, b"\x03")  # ^C: SIGINT to the terminal's foreground process group
        out += _read_until(master, b"got-int\r\n")
    finally:
        os.close(master)
    _wait_for(lambda: _state(rt, cid)["status"] == "stopped", what="the container to exit")
    return out.decode()


def test_create_with_a_console_socket_as_runc(runsc, runc_cli, make_bundle, tmp_path):
    runc_out = _console_session(runc_cli, make_bundle, tmp_path, "runc")
    out = _console_session(runsc, make_bundle, tmp_path, "runsc-py")
    # consoleSize applies, the slave is stdin and the controlling terminal (/dev/tty, ^C).
    assert out.replace("^C", "").split() == ["isatty", "30", "100", "/dev/pts/0", "ctty",
                                             "ready", "got-int"], out
    assert out == runc_out


def _exec_console_session(rt: Runtime, make_bundle, tmp_path: Path, name: str) -> str:
    cid = _up(rt, make_bundle("sleep", "1000"))
    process = _process_json(tmp_path / f"{name}.json", "sh", terminal=True,
                            consoleSize={"height": 40, "width": 120})
    console = ConsoleSocket(tmp_path / f"{name}-exec.sock")
    pid_file = tmp_path / f"{name}-exec.pid"
    r = rt("exec", "--process", str(process), "--console-socket", str(console.path),
           "--detach", "--pid-file", str(pid_file), cid)
    assert r.returncode == 0, r
    master = console.master()
    pidfd = os.pidfd_open(int(pid_file.read_text()))
    try:
        os.write(master, b"test -t 0 && test -t 1 && echo is-a-tty; echo size=$(stty size); "
                         b"echo pid1=$(cat /proc/1/comm) $((6*7)); exit 3\n")
        out = _read_until(master, b"pid1=sleep 42")
        assert _readable(pidfd, 20), "the pid file's process outlived the shell"
    finally:
        os.close(pidfd)
        os.close(master)
    return out.decode()


def test_exec_with_a_console_socket_as_runc(runsc, runc_cli, make_bundle, tmp_path):
    runc_out = _exec_console_session(runc_cli, make_bundle, tmp_path, "runc")
    out = _exec_console_session(runsc, make_bundle, tmp_path, "runsc-py")
    for o in (out, runc_out):
        assert "\r\nis-a-tty\r\nsize=40 120\r\npid1=sleep 42" in o, o


def test_exec_with_a_terminal_needs_a_console_socket(runsc, make_bundle, tmp_path):
    cid = _up(runsc, make_bundle("sleep", "1000"))
    process = _process_json(tmp_path / "p.json", "sh", terminal=True)
    assert "console-socket" in _one_line_error(runsc("exec", "--process", str(process), cid))


# -- ps, update, pause ----------------------------------------------------------------

def _nspid(pid: int) -> int:
    """pid's number in its innermost PID namespace."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("NSpid:"):
            return int(line.split()[-1])
    raise AssertionError(f"no NSpid for {pid}")


def test_ps_json_lists_host_pids_as_runc(runsc, runc_cli, make_bundle):
    listed = {}
    for name, rt in (("runc", runc_cli), ("runsc-py", runsc)):
        cid = _up(rt, make_bundle("sh", "-c", "sleep 1000 & sleep 1000 & wait"))
        _wait_for(lambda: len(_ps(rt, cid)) == 3, what="three processes")  # noqa: B023
        r = rt("ps", "--format", "json", cid)
        pids = json.loads(r.stdout)
        assert isinstance(pids, list) and all(type(p) is int for p in pids), r.stdout
        assert all(_alive(p) for p in pids)
        listed[name] = (pids, sorted(_nspid(p) for p in pids), cid, rt)
    runc_pids, runc_inner, _, _ = listed["runc"]
    pids, inner, cid, _ = listed["runsc-py"]
    assert len(pids) == len(runc_pids) == 3
    assert inner[0] == runc_inner[0] == 1  # the container's init is among them
    assert _state(runsc, cid)["pid"] not in pids  # the sentry is not a container process
    assert runc_cli("ps", "--format", "json", "no-such-container").returncode != 0
    assert "no-such-container" in _one_line_error(
        runsc("ps", "--format", "json", "no-such-container"))


def _memory_limit(pid: int) -> int:
    """The memory limit of pid's cgroup (v1 memory controller or v2)."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            return int(Path(f"/sys/fs/cgroup/memory{path}/memory.limit_in_bytes").read_text())
        if controllers == "" and Path(f"/sys/fs/cgroup{path}/memory.max").exists():
            value = Path(f"/sys/fs/cgroup{path}/memory.max").read_text().strip()
            return -1 if value == "max" else int(value)
    raise AssertionError(f"no memory cgroup for {pid}")


def test_update_resources_from_stdin_as_runc(runsc, runc_cli, make_bundle):
    new = json.dumps({"memory": {"limit": 200 * 1024 * 1024}})
    limits = {}
    for name, rt in (("runc", runc_cli), ("runsc-py", runsc)):
        bundle = make_bundle("sleep", "1000")
        bundle.spec["linux"]["resources"] = {"memory": {"limit": 128 * 1024 * 1024}}
        bundle.spec["linux"]["cgroupsPath"] = f"/runsc-py/{name}-{uuid.uuid4().hex[:8]}"
        bundle.write()
        cid = _up(rt, bundle)
        init = _ps(rt, cid)[0]
        assert _memory_limit(init) == 128 * 1024 * 1024
        r = rt("update", "--resources", "-", cid, input=new)
        assert r.returncode == 0, r
        assert rt("update", "--resources", "-", cid, input="{not json").returncode != 0
        limits[name] = _memory_limit(init)
        if rt is runsc:
            line = _one_line_error(rt("update", "--resources", "-", cid, input="{not json"))
            assert "resources" in line, line
            free = rt("exec", cid, "free", "-m").stdout
            assert free.splitlines()[1].split()[1] == "200", free
            _one_line_error(rt("update", "--resources", "-", "no-such-container", input=new))
    assert limits["runsc-py"] == limits["runc"] == 200 * 1024 * 1024


def _pause_session(rt: Runtime, make_bundle) -> list[str]:
    bundle = make_bundle("sh", "-c",
                         "i=0; while true; do i=$((i+1)); echo $i > /tmp/n; sleep 0.02; done",
                         readonly=False)
    cid = _up(rt, bundle)
    counter = bundle.rootfs / "tmp" / "n"
    _wait_for(lambda: counter.exists() and counter.read_text().strip(), what="the counter")
    statuses = [_state(rt, cid)["status"]]
    assert rt("pause", cid).returncode == 0
    statuses.append(_state(rt, cid)["status"])
    frozen = counter.read_text()
    time.sleep(0.5)
    assert counter.read_text() == frozen, "the counter moved in a paused container"
    assert rt("resume", cid).returncode == 0
    statuses.append(_state(rt, cid)["status"])
    _wait_for(lambda: counter.read_text() != frozen, what="the counter to move again")
    r = rt("resume", cid)  # not paused any more
    assert r.returncode != 0
    if not isinstance(rt, Runc):
        assert "not paused" in _one_line_error(r)
    # SIGKILL while paused ends the container and every process in it.
    pids = _ps(rt, cid)
    assert rt("pause", cid).returncode == 0
    assert rt("kill", cid, "KILL").returncode == 0
    _wait_for(lambda: _state(rt, cid)["status"] == "stopped", what="the container to stop")
    statuses.append(_state(rt, cid)["status"])
    _wait_for(lambda: not any(_alive(p) for p in pids), timeout=10,
              what="the killed processes to be gone")
    for command in ("pause", "resume"):
        r = rt(command, cid)
        assert r.returncode != 0, r
        if not isinstance(rt, Runc):
            assert cid in _one_line_error(r)
    assert rt("delete", cid).returncode == 0
    return statuses


def test_pause_and_resume_as_runc(runsc, runc_cli, make_bundle):
    reference = _pause_session(runc_cli, make_bundle)
    assert _pause_session(runsc, make_bundle) == reference == ["running", "paused",
                                                               "running", "stopped"]


# -- the JSON log --------------------------------------------------------------------

@pytest.mark.parametrize("problem", ["rootfs", "executable"])
def test_failing_create_ends_the_json_log_with_an_error_as_runc(runsc, runc_cli, make_bundle,
                                                               tmp_path, problem):
    bundle = make_bundle("no-such-program")
    if problem == "rootfs":
        bundle.spec["root"]["path"] = "no-such-rootfs"
    bundle.write()
    named = f"no-such-{'rootfs' if problem == 'rootfs' else 'program'}"
    for name, rt in (("runc", runc_cli), ("runsc-py", runsc)):
        log = tmp_path / f"{name}-log.json"
        cid = _cid()
        r = rt("--log", str(log), "--log-format", "json", "create", "--bundle",
               str(bundle.path), cid)
        assert r.returncode != 0, r
        entries = [json.loads(line) for line in log.read_text().splitlines()]  # all JSON
        last = entries[-1]
        assert last["level"] == "error" and named in last["msg"], (name, last)
        assert isinstance(last["time"], str)
        assert not (rt.root / cid).exists()
    assert named in _one_line_error(runsc("create", "--bundle", str(bundle.path), _cid()))


def test_a_whole_lifecycle_logs_only_json_lines(runsc, make_bundle, tmp_path):
    log = tmp_path / "log.json"
    flags = ("--log", str(log), "--log-format", "json")
    bundle = make_bundle("sh", "-c", "echo hi; exit 3")
    cid = _cid()
    assert runsc(*flags, "create", "--bundle", str(bundle.path), cid).returncode == 0
    assert runsc(*flags, "start", cid).returncode == 0
    _wait_for(lambda: _state(runsc, cid)["status"] == "stopped")
    assert runsc(*flags, "delete", cid).returncode == 0
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert entries and all({"level", "msg", "time"} <= set(e) for e in entries), entries
    assert not [e for e in entries if e["level"] == "error"], entries


# -- Docker's daemon.json -------------------------------------------------------------

REAL_DAEMON_JSON = Path("/etc/docker/daemon.json")


@pytest.fixture
def real_daemon_json_untouched():
    before = REAL_DAEMON_JSON.read_bytes() if REAL_DAEMON_JSON.exists() else None
    yield
    after = REAL_DAEMON_JSON.read_bytes() if REAL_DAEMON_JSON.exists() else None
    assert after == before, "a test changed /etc/docker/daemon.json"


def test_install_help_names_the_config_file_option(runsc):
    r = runsc("install", "--help")
    assert r.returncode == 0 and "--config-file" in r.stdout and "--runtime" in r.stdout, r


def test_install_and_uninstall_keep_the_rest_of_daemon_json(runsc, tmp_path,
                                                            real_daemon_json_untouched):
    path = tmp_path / "daemon.json"
    original = {"log-level": "warn", "default-runtime": "runc",
                "runtimes": {"other": {"path": "/x", "runtimeArgs": ["--a"]}}}
    path.write_text(json.dumps(original))
    r = runsc("install", "--config-file", str(path), "--", "--debug", "--platform", "seccomp")
    assert r.returncode == 0, r
    doc = json.loads(path.read_text())
    entry = doc["runtimes"].pop("runsc-py")
    assert doc == original  # every other entry kept
    assert os.access(entry["path"], os.X_OK)
    assert entry["runtimeArgs"] == ["--debug", "--platform", "seccomp"]
    installed = path.read_text()
    assert runsc("install", "--config-file", str(path), "--", "--debug", "--platform",
                 "seccomp").returncode == 0
    assert path.read_text() == installed  # idempotent
    assert runsc("install", "--config-file", str(path), "--runtime", "sandboxed").returncode == 0
    assert json.loads(path.read_text())["runtimes"]["sandboxed"] == {"path": entry["path"]}
    assert runsc("uninstall", "--config-file", str(path)).returncode == 0
    doc = json.loads(path.read_text())
    assert set(doc["runtimes"]) == {"other", "sandboxed"}
    assert runsc("uninstall", "--config-file", str(path), "--runtime",
                 "sandboxed").returncode == 0
    assert json.loads(path.read_text()) == original
    assert runsc("uninstall", "--config-file", str(path)).returncode == 0  # nothing to do
    assert json.loads(path.read_text()) == original


def test_install_into_a_missing_daemon_json_creates_it(runsc, tmp_path,
                                                       real_daemon_json_untouched):
    path = tmp_path / "docker" / "daemon.json"
    assert runsc("install", "--config-file", str(path)).returncode == 0
    assert set(json.loads(path.read_text())["runtimes"]) == {"runsc-py"}


@pytest.mark.parametrize("text", ["{ not json", "[1, 2]", '{"runtimes": []}'])
def test_install_refuses_a_malformed_daemon_json(runsc, tmp_path, text,
                                                 real_daemon_json_untouched):
    path = tmp_path / "daemon.json"
    path.write_text(text)
    for command in ("install", "uninstall"):
        line = _one_line_error(runsc(command, "--config-file", str(path)))
        assert str(path) in line, line
        assert path.read_text() == text
    assert [p.name for p in tmp_path.iterdir()] == ["daemon.json"]  # no temporary left

