"""The sentry's confinement (issue 11), read from the host: its own empty root, only the
capabilities sentry/confine.py lists, no_new_privs, a seccomp filter; and a syscall
outside the allowlist, made to happen as a compromised sentry would make it (injected with
ptrace from here), kills it loudly while the sandbox fails closed."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from conftest import inject_syscall, proc_status, process_alive

from sentry import confine


def _wait_running(runsc, cid: str) -> dict:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        r = runsc("state", cid)
        if r.returncode == 0 and json.loads(r.stdout)["status"] == "running":
            return json.loads((runsc.root / cid / "state.json").read_text())
        time.sleep(0.05)
    raise AssertionError(f"{cid} never ran")


def test_sentry_runs_confined(runsc, make_bundle):
    cid = "sc-" + uuid.uuid4().hex[:8]
    assert runsc("create", "--bundle", str(make_bundle("sleep", "60").path), cid).returncode == 0
    try:
        assert runsc("start", cid).returncode == 0
        sentry = _wait_running(runsc, cid)["pid"]
        assert proc_status(sentry, "Seccomp") == "2"
        assert proc_status(sentry, "NoNewPrivs") == "1"
        kept = sum(1 << c for c in confine.CAPS_KEPT)
        for key in ("CapEff", "CapPrm", "CapBnd"):
            assert int(proc_status(sentry, key), 16) == kept, key
        assert int(proc_status(sentry, "CapInh"), 16) == int(proc_status(sentry, "CapAmb"), 16) == 0
        # Its root: an empty tmpfs holding /proc and the container's cgroup, nothing else.
        root = f"/proc/{sentry}/root"
        assert os.stat(root).st_dev != os.stat("/").st_dev
        assert sorted(os.listdir(root)) == ["proc", "sys"]
        assert os.listdir(f"{root}/sys/fs") == ["cgroup"]
        assert os.stat(f"/proc/{sentry}/ns/mnt").st_ino != os.stat("/proc/self/ns/mnt").st_ino
        with pytest.raises(OSError):
            open(f"{root}/x", "w").close()  # read-only
        # And the sandbox works as before: an exec runs, and /proc renders.
        r = runsc("exec", cid, "cat", "/proc/self/status")
        assert r.returncode == 0 and "Name:\tcat" in r.stdout, r.stderr
    finally:
        runsc("delete", "--force", cid)


# kill(1, 0): signal a host process; socket(AF_INET): a network. Both harmless if run.
@pytest.mark.parametrize("nr,args", [(62, (1, 0)), (41, (2, 1, 0))], ids=["kill", "socket"])
def test_syscall_outside_the_allowlist_kills_the_sentry_loudly(runsc, make_bundle, tmp_path,
                                                               nr, args):
    cid = "sv-" + uuid.uuid4().hex[:8]
    log = tmp_path / "runsc.log"
    bundle = make_bundle("sleep", "60")
    run = subprocess.Popen(runsc.cmd("--log", str(log), "run", "--bundle", str(bundle.path),
                                     cid), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
    try:
        state = _wait_running(runsc, cid)
        sentry, init = state["pid"], state["init_pid"]
        time.sleep(0.2)  # into its epoll_wait
        assert inject_syscall(sentry, nr, *args) == "trapped"
        _, err = run.communicate(timeout=20)
        assert run.returncode == 128 + signal.SIGSYS
        assert "outside its seccomp allowlist" in err, err
        text = log.read_text()
        assert "most recent call first" in text and "serve" in text, text[-2000:]
        deadline = time.monotonic() + 1.0
        while process_alive(init) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not process_alive(init), "the workload outlived its sentry by more than a second"
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        runsc("delete", "--force", cid)


def test_sentry_lists_are_the_documented_ones():
    """README's "Confinement: the sentry and the spawner" names exactly confine's lists."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("### Confinement: the sentry and the spawner")[1].split("\n### ")[0]
    named = set(re.findall(r"`([a-z0-9_]+)`", section))
    assert set(confine.ALLOWED) | set(confine.RULED) <= named
    assert f"seccomp allowlist of {len(confine.ALLOWED) + len(confine.RULED)} host" in \
        " ".join(section.split())
    for why in confine.CAPS_KEPT.values():
        assert " ".join(why.split()) in " ".join(section.split())
    assert not {"kill", "clone", "fork", "execve", "socket", "mount", "ptrace", "setns"} & \
        (set(confine.ALLOWED) | set(confine.RULED))


def test_the_sentrys_namespaces_are_the_containers(runsc, make_bundle):
    """/proc/<state pid>/ns/{uts,ipc,net} are the init's; its cgroup namespace is rooted
    at the container's cgroup (the OCI validation suite reads them)."""
    cid = "ns-" + uuid.uuid4().hex[:8]
    assert runsc("create", "--bundle", str(make_bundle("sleep", "60").path), cid).returncode == 0
    try:
        state = json.loads((runsc.root / cid / "state.json").read_text())
        sentry, init = state["pid"], state["init_pid"]
        for ns in ("uts", "ipc", "net"):
            assert os.stat(f"/proc/{sentry}/ns/{ns}").st_ino == \
                os.stat(f"/proc/{init}/ns/{ns}").st_ino, ns
        assert os.stat(f"/proc/{sentry}/ns/cgroup").st_ino != \
            os.stat("/proc/self/ns/cgroup").st_ino
        with open(f"/proc/{sentry}/cgroup") as f:  # read from the host's cgroup namespace
            assert any(line.endswith(f"/{cid}") for line in f.read().splitlines())
    finally:
        runsc("delete", "--force", cid)


def test_spawner_signals_threads_of_the_sandbox_only():
    """The spawner's thread-directed signal (SIGXFSZ for an emulated truncate) reaches a
    thread in the sandbox's PID namespace and nothing outside it, whatever TID the sentry
    names."""
    from sentry.spawner import _Server

    outside = subprocess.Popen(["sleep", "60"])
    inside = subprocess.Popen(["unshare", "--pid", "--fork", "sleep", "60"])
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            kids = Path(f"/proc/{inside.pid}/task/{inside.pid}/children").read_text().split()
            if kids:
                break
            time.sleep(0.01)
        target = int(kids[0])
        server = _Server.__new__(_Server)
        server.sandbox_pidns = os.readlink(f"/proc/{target}/ns/pid")
        server._signal_thread(outside.pid, signal.SIGKILL)
        assert not server._signal_thread(os.getpid(), 0)
        time.sleep(0.2)
        assert outside.poll() is None
        server._signal_thread(target, signal.SIGKILL)  # (the namespace's pid 1)
        inside.wait(timeout=5)
        assert not process_alive(target)
    finally:
        for p in (outside, inside):
            if p.poll() is None:
                p.kill()
                p.wait()
