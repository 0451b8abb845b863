"""containerd with runsc-py as the runc binary of its io.containerd.runc.v2 shim (what a
runtime handler, and so a Kubernetes RuntimeClass, uses), end to end: a real containerd
(Debian's), started here with a private root, state and socket; containers run with
`ctr run --rootfs` on a busybox tree (no registry is reachable)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from conftest import runsc_py_binary, stop_daemon

NAMESPACE = "runsc-py-test"


class Ctr:
    def __init__(self, base: str, rootfs: Path) -> None:
        self.sock = f"{base}/containerd.sock"
        self.rootfs = rootfs
        self.runtime_root = f"/run/containerd/runc/{NAMESPACE}"  # the shim's --root

    def __call__(self, *args: str, input: str | None = None, timeout: float = 60,
                 check: bool = False) -> subprocess.CompletedProcess:
        r = subprocess.run(["ctr", "--address", self.sock, "--namespace", NAMESPACE, *args],
                           input=input, capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"ctr {' '.join(args)}: {r}")
        return r

    def run(self, *args: str, binary: str | None = None, **kw) -> subprocess.CompletedProcess:
        """`ctr run` with runsc-py as the shim's runc (or `binary`): flags, ID, command."""
        flags, rest = _split(args)
        return self("run", "--runtime", "io.containerd.runc.v2",
                    "--runc-binary", binary or runsc_py_binary(), *flags,
                    "--rootfs", str(self.rootfs), *rest, **kw)

    def remove(self, cid: str) -> None:
        self("task", "kill", "-s", "SIGKILL", cid)
        deadline = time.monotonic() + 20
        while cid in self("task", "ls", "-q").stdout.split():
            if self("task", "delete", cid).returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self("container", "delete", cid)


def _split(args: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """ctr's flags come before the ID; the ID is the first argument not starting with -."""
    args = list(args)
    flags = []
    while args and args[0].startswith("-"):
        flag = args.pop(0)
        flags.append(flag)
        if flag in ("--memory-limit", "--env", "--cwd") and args:
            flags.append(args.pop(0))
    return flags, args


@pytest.fixture(scope="module")
def ctr(rootfs_template):
    if not shutil.which("containerd"):
        pytest.fail("containerd is not installed (the set-up installs Debian's containerd)")
    base = tempfile.mkdtemp(prefix="rpc-", dir="/tmp")
    config = Path(base) / "config.toml"
    config.write_text(f"""version = 2
root = "{base}/root"
state = "{base}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "{base}/containerd.sock"
[ttrpc]
  address = "{base}/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
""")
    rootfs = Path(base) / "rootfs"
    shutil.copytree(rootfs_template, rootfs, symlinks=True)
    log = open(f"{base}/containerd.log", "wb")
    daemon = subprocess.Popen(["containerd", "--config", str(config)], stdout=log,
                              stderr=subprocess.STDOUT)
    c = Ctr(base, rootfs)
    try:
        deadline = time.monotonic() + 30
        while c("version").returncode != 0:
            if daemon.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"containerd did not start: {Path(base, 'containerd.log').read_text()}")
            time.sleep(0.3)
        yield c
    finally:
        for cid in c("container", "ls", "-q").stdout.split():
            c.remove(cid)
        stop_daemon(daemon, base)
        log.close()
        try:
            os.rmdir(c.runtime_root)  # made by the shim's runtime calls, empty by now
        except OSError:
            pass


@pytest.fixture
def task(ctr):
    """A detached long-running task under runsc-py: its ID; removed afterwards."""
    started = []

    def start(*flags: str) -> str:
        cid = "t-" + uuid.uuid4().hex[:10]
        ctr.run("-d", *flags, cid, "/bin/sh", "-c", "while true; do sleep 0.2; done",
                check=True)
        started.append(cid)
        return cid

    yield start
    for cid in started:
        ctr.remove(cid)


def _cid() -> str:
    return "c-" + uuid.uuid4().hex[:10]


def test_uname_is_the_sentrys(ctr):
    r = ctr.run("--rm", _cid(), "/bin/uname", "-r")
    assert (r.returncode, r.stdout) == (0, "4.4.0\n"), r


def test_exit_code(ctr):
    assert ctr.run("--rm", _cid(), "/bin/sh", "-c", "exit 7").returncode == 7


def test_stdin_reaches_the_workload(ctr):
    # ctr does not close the task's stdin at EOF (nor under runc): read one line.
    r = ctr.run("--rm", _cid(), "/bin/head", "-n1", input="hello\n")
    assert (r.returncode, r.stdout) == (0, "hello\n"), r


def test_memory_limit_shows_in_free(ctr):
    r = ctr.run("--rm", "--memory-limit", str(128 * 1024 * 1024), _cid(), "/bin/free", "-m")
    assert r.stdout.splitlines()[1].split()[1] == "128", r


def test_exec_ps_pause_resume_and_kill(ctr, task):
    cid = task()
    r = ctr("task", "exec", "--exec-id", "e1", cid, "/bin/ps", "-o", "pid,args", check=True)
    rows = [line.split(None, 1) for line in r.stdout.splitlines()[1:]]
    assert rows[0] == ["1", "/bin/sh -c while true; do sleep 0.2; done"], r.stdout
    assert ctr("task", "exec", "--exec-id", "e2", cid, "/bin/sh", "-c",
               "exit 5").returncode == 5
    # Host pids of live processes; the workload's `sleep 0.2`s come and go, so a listing
    # may name one that ended just after it: look again (three times at most).
    for _ in range(3):
        pids = ctr("task", "ps", cid, check=True).stdout.split()[2::2]
        if pids and all(os.path.isdir(f"/proc/{p}") for p in pids):
            break
    assert pids and all(os.path.isdir(f"/proc/{p}") for p in pids), pids
    ctr("task", "pause", cid, check=True)
    assert "PAUSED" in ctr("task", "ls").stdout
    ctr("task", "resume", cid, check=True)
    assert "PAUSED" not in ctr("task", "ls").stdout
    ctr("task", "kill", "-s", "SIGKILL", cid, check=True)
    deadline = time.monotonic() + 20
    while "STOPPED" not in ctr("task", "ls").stdout:
        assert time.monotonic() < deadline, ctr("task", "ls").stdout
        time.sleep(0.2)


def test_delete_leaves_nothing_behind(ctr, task):
    cid = task()
    state = json.loads(Path(ctr.runtime_root, cid, "state.json").read_text())
    pids = [state[k] for k in ("pid", "gofer_pid", "init_pid")]
    ctr.remove(cid)
    assert not os.path.exists(os.path.join(ctr.runtime_root, cid))
    deadline = time.monotonic() + 10
    while any(os.path.exists(f"/proc/{p}") for p in pids):
        assert time.monotonic() < deadline, pids
        time.sleep(0.1)
    cgroups = subprocess.run(["find", "/sys/fs/cgroup", "-maxdepth", "4", "-name", cid],
                             capture_output=True, text=True).stdout.split()
    assert cgroups == []


def test_failing_create_shows_runsc_pys_error(ctr):
    r = ctr.run("--rm", _cid(), "/no/such/program")
    assert r.returncode != 0
    assert 'exec: "/no/such/program": no such file or directory' in r.stderr, r.stderr


def test_task_metrics_count_the_whole_sandbox(ctr, task):
    """The shim reads the cgroup of the pid in --pid-file (the sentry's): the container's,
    with its limit, the workload's and the sandbox's tasks, and their CPU time."""
    cid = task("--memory-limit", str(128 * 1024 * 1024))
    time.sleep(1)
    r = ctr("task", "metrics", "--format", "json", cid, check=True)
    metrics = json.loads(r.stdout)
    data = metrics.get("Data") or metrics.get("data") or metrics
    text = json.dumps(data)
    assert str(128 * 1024 * 1024) in text, text
    state = json.loads(Path(ctr.runtime_root, cid, "state.json").read_text())
    pids = data["pids"]["current"]
    # sh (and at times a sleep), the sentry, gofer and watchdog.
    assert pids >= 4, data["pids"]
    assert data["cpu"]["usage"]["total"] > 0, data["cpu"]
    with open(f"/proc/{state['pid']}/cgroup") as f:
        assert cid in f.read()
