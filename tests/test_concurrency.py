"""Many containers at once, and the control socket's own protection.

Docker and the kubelet create, start and exec concurrently all the time: every exec must
get its output and status, whatever the timing of the control messages.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import REPO
from test_faults import NOTHING, open_fds, subreaper, wait_for_nothing  # noqa: F401

from sentry.main import CONTROL_SOCKET

# 3 rounds of 10 keep the suite short on 2 cores; the load case is 10 rounds of 20:
# RUNSC_PY_CONCURRENCY=20 RUNSC_PY_ROUNDS=10 (figures in README.md).
N = int(os.environ.get("RUNSC_PY_CONCURRENCY", "10"))
ROUNDS = int(os.environ.get("RUNSC_PY_ROUNDS", "3"))
IDLE = ["sh", "-c", "while :; do sleep 1; done"]


def _create_checked(runsc, bundle, cid: str) -> str:
    err_path = bundle.path / "create.err"
    with open(err_path, "wb") as err:
        r = subprocess.run(runsc.cmd("create", "--bundle", str(bundle.path), cid),
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                           timeout=120, cwd=REPO)
    return "" if r.returncode == 0 else f"create {cid}: {err_path.read_text()}"


def _round(runsc, make_bundle, pool: ThreadPoolExecutor, n: int) -> tuple[list[str], list]:
    """n containers created, started, exec'd into and deleted at once; (ids, failures)."""
    ids = [f"cc-{i}-{uuid.uuid4().hex[:8]}" for i in range(n)]
    bundles = [make_bundle(*IDLE) for _ in ids]
    bad: list = [e for e in pool.map(lambda a: _create_checked(runsc, *a),
                                     zip(bundles, ids, strict=True)) if e]
    started = list(pool.map(lambda cid: runsc("start", cid), ids))
    bad += [("start", cid, r.returncode, r.stderr) for cid, r in zip(ids, started, strict=True)
            if (r.returncode, r.stderr) != (0, "")]
    execs = list(pool.map(lambda cid: runsc("exec", cid, "echo", "hi"), ids))
    bad += [("exec", cid, r.returncode, r.stdout, r.stderr)
            for cid, r in zip(ids, execs, strict=True)
            if (r.returncode, r.stdout, r.stderr) != (0, "hi\n", "")]
    deleted = list(pool.map(lambda cid: runsc("delete", "--force", cid), ids))
    bad += [("delete", cid, r.returncode, r.stderr) for cid, r in zip(ids, deleted, strict=True)
            if (r.returncode, r.stderr) != (0, "")]
    return ids, bad


@pytest.mark.usefixtures("subreaper")
def test_concurrent_create_start_exec_delete(runsc, make_bundle, tmp_path):
    """ROUNDS rounds of N containers at once; afterwards nothing of them is left: no process
    (the test is their subreaper), cgroup, mount or state directory, no descriptor of ours."""
    fds_before = open_fds()
    all_ids: list[str] = []
    failures: list = []
    times = []
    with ThreadPoolExecutor(max_workers=N) as pool:
        for _ in range(ROUNDS):
            t = time.monotonic()
            ids, bad = _round(runsc, make_bundle, pool, N)
            times.append(time.monotonic() - t)
            all_ids += ids
            failures += bad
    print(f"\n{ROUNDS} rounds of {N}: " + ", ".join(f"{x:.1f}" for x in times) +
          f" s; {len(failures)} failures")
    assert failures == [], f"{len(failures)} failures: {failures[:3]}"
    left = wait_for_nothing(runsc.root, all_ids, [str(tmp_path)], grace=5)
    assert left == NOTHING
    assert open_fds() == fds_before


def _sentry_pid(runsc, cid: str) -> int:
    return json.loads((runsc.root / cid / "state.json").read_text())["pid"]


def test_control_socket_is_0600_and_refuses_other_uids(runsc, make_bundle):
    bundle = make_bundle(*IDLE)
    cid = "cs-" + uuid.uuid4().hex[:10]
    old = os.umask(0)
    try:  # the runtime inherits umask 000: the socket must not follow it
        assert _create_checked(runsc, bundle, cid) == ""
    finally:
        os.umask(old)
    sock_path = runsc.root / cid / CONTROL_SOCKET
    assert oct(os.stat(sock_path).st_mode & 0o7777) == oct(0o600)

    # Another uid, as if the mode were not there: the sentry answers nothing and does
    # nothing. (The O_PATH descriptor skips the test's private 0700 directories.)
    os.chmod(sock_path, 0o666)
    req = json.dumps({"op": "start"}).encode() + b"\n"
    dir_fd = os.open(runsc.root / cid, os.O_PATH | os.O_DIRECTORY)
    pid = os.fork()
    if pid == 0:
        code = 3
        try:
            os.setgroups([])
            os.setgid(1000)
            os.setuid(1000)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(10)
                s.connect(f"/proc/self/fd/{dir_fd}/{CONTROL_SOCKET}")
                code = 4
                # Refused: closed unanswered (a reset if our request was unread).
                try:
                    s.sendall(req)
                    code = 0 if s.recv(65536) == b"" else 4
                except (BrokenPipeError, ConnectionResetError):
                    code = 0
        except OSError:
            code = 5 if code == 3 else code
        finally:
            os._exit(code)
    os.close(dir_fd)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    st = json.loads(runsc("state", cid).stdout)
    assert st["status"] == "created"
    assert not (runsc.root / cid / "started").exists()
    assert os.path.exists(f"/proc/{_sentry_pid(runsc, cid)}")

    # Its own uid still works.
    r = runsc("start", cid)
    assert r.returncode == 0, r.stderr
    assert json.loads(runsc("state", cid).stdout)["status"] == "running"


def test_line_reader_splits_and_joins_messages():
    """Two messages in one recv, one message over many, and a cut-off one (an error, never a
    traceback or a guess)."""
    from sentry.main import LineReader, ProtocolError
    a, b = socket.socketpair()
    with a, b:
        a.sendall(b'{"pid": 7}\n{"exit": 0}\n{"op"')
        reader = LineReader(b)
        assert reader.read() == {"pid": 7}
        assert reader.read() == {"exit": 0}
        a.sendall(b': "start"}')
        a.sendall(b"\n")
        assert reader.read() == {"op": "start"}
        a.sendall(b'{"exit": 1')
        a.shutdown(socket.SHUT_WR)
        try:
            reader.read()
        except ProtocolError as e:
            assert "ended inside a message" in str(e)
        else:
            raise AssertionError("a cut-off message was accepted")
    a, b = socket.socketpair()
    with a, b:
        a.sendall(b"[1]\n")
        a.shutdown(socket.SHUT_WR)
        reader = LineReader(b)
        try:
            reader.read()
        except ProtocolError as e:
            assert "malformed" in str(e)
        else:
            raise AssertionError("a message that is not an object was accepted")


def test_a_cut_off_control_request_gets_an_error_and_the_sentry_carries_on(runsc, make_bundle):
    bundle = make_bundle(*IDLE)
    cid = "cs-" + uuid.uuid4().hex[:10]
    assert _create_checked(runsc, bundle, cid) == ""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(str(runsc.root / cid / CONTROL_SOCKET))
        s.sendall(b'{"op": "sta')
        s.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    assert json.loads(reply) == {"error": "control request: the connection ended inside a "
                                          "message"}
    assert json.loads(runsc("state", cid).stdout)["status"] == "created"
    r = runsc("start", cid)
    assert r.returncode == 0, r.stderr
    r = runsc("exec", cid, "echo", "hi")
    assert (r.returncode, r.stdout, r.stderr) == (0, "hi\n", "")
