"""The gofer's confinement (issue 11; README "Confinement"), read from the host's /proc:
no_new_privs, a seccomp filter, only the documented capabilities, a PID namespace and an
empty network namespace of its own. And fail closed: a gofer made to make a forbidden
syscall (injected from this test with ptrace, as a take-over would) dies of SIGSYS, and
the sandbox stops with it."""
from __future__ import annotations

import json
import os
import re
import signal
import time
import uuid
from pathlib import Path

import pytest
from conftest import inject_syscall, proc_status, process_alive

from gofer import confine
from syscalls import abi

_SYS_MOUNT, _SYS_KILL, _SYS_PTRACE = 165, 62, 101




def _create(runsc, make_bundle, *args: str) -> tuple[str, dict]:
    cid = "cf-" + uuid.uuid4().hex[:8]
    bundle = make_bundle("sleep", "30")
    created = runsc(*args, "create", "--bundle", str(bundle.path), cid)
    assert created.returncode == 0, created.stderr
    return cid, json.loads((runsc.root / cid / "state.json").read_text())


def test_gofer_is_confined(runsc, make_bundle):
    cid, state = _create(runsc, make_bundle)
    try:
        gofer, init = state["gofer_pid"], state["init_pid"]
        assert proc_status(gofer, "NoNewPrivs") == "1"
        assert proc_status(gofer, "Seccomp") == "2"  # a filter
        keep = f"{confine.KEEP_MASK:016x}"
        for key in ("CapEff", "CapPrm", "CapBnd"):
            assert proc_status(gofer, key) == keep, key
        assert proc_status(gofer, "CapInh") == proc_status(gofer, "CapAmb") == "0" * 16
        # Its own network namespace (empty but for lo) and its own PID namespace, where it
        # is alone, pid 1: neither the host's nor the sandbox's (the init's).
        for ns in ("net", "pid"):
            inodes = {os.stat(f"/proc/{p}/ns/{ns}").st_ino for p in (gofer, os.getpid(), init)}
            assert len(inodes) == 3, ns
        assert proc_status(gofer, "NSpid") == f"{gofer}\t1"
        with open(f"/proc/{gofer}/net/dev") as f:
            interfaces = [line.split(":")[0].strip() for line in f.readlines()[2:]]
        assert interfaces == ["lo"]
        # Its /proc is nothing of the host's: no mount in its tree is a procfs (the
        # sandbox's /proc is the sentry's synthetic one), and the one it holds, mounted
        # nowhere, shows its own process alone and no system files.
        with open(f"/proc/{gofer}/mountinfo") as f:
            assert not [line for line in f if " - proc " in line]
        procs = []
        for fd in os.listdir(f"/proc/{gofer}/fd"):
            try:
                entries = set(os.listdir(f"/proc/{gofer}/fd/{fd}"))
            except OSError:
                continue  # not a directory
            if "self" in entries:
                procs.append(entries)
        assert procs == [{"1", "self", "thread-self"}]
        # And nothing else of the sentry's (its log file, its epoll, its pipes): stdio on
        # /dev/null, the sentry's socket, its root and that procfs.
        fds = sorted(os.readlink(f"/proc/{gofer}/fd/{fd}")
                     for fd in os.listdir(f"/proc/{gofer}/fd"))
        assert [f for f in fds if not f.startswith("socket:")] == ["/", "/"] + 3 * ["/dev/null"]
        assert len(fds) == 6
    finally:
        runsc("delete", "--force", cid)


def test_gofer_lists_are_the_documented_ones():
    """README's "Confinement: the gofer" lists what gofer/confine.py applies, and the
    allowlist holds nothing that reaches outside the gofer."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split("### Confinement: the gofer\n", 1)[1].split("\n### ", 1)[0]
    cap_names = {name for name in dir(abi) if name.startswith("CAP_")
                 and getattr(abi, name) in confine.CAPABILITIES}
    assert len(cap_names) == len(confine.CAPABILITIES)
    assert set(re.findall(r"^  - (CAP_[A-Z_]+):", section, re.M)) == cap_names
    assert f"{len(confine.CAPABILITIES)} capabilities" in section
    listed = section.split("The list:", 1)[1].split("Never allowed", 1)[0]
    assert set(re.findall(r"`([a-z0-9_]+)`", listed)) == set(confine.SYSCALLS)
    assert f"allowlist of {len(confine.SYSCALLS)} host syscalls" in section
    assert not set(confine.SYSCALLS) & set(confine.DENIED)
    assert not {abi.CAP_SYS_ADMIN, abi.CAP_KILL, abi.CAP_SYS_PTRACE,
                abi.CAP_SETPCAP} & set(confine.CAPABILITIES)


@pytest.mark.parametrize("call", ["mount", "kill", "ptrace"])
def test_forbidden_syscall_kills_gofer_and_sandbox(runsc, make_bundle, tmp_path, call):
    log = tmp_path / "runsc.log"
    cid, state = _create(runsc, make_bundle, "--log", str(log))
    try:
        assert runsc("start", cid).returncode == 0
        gofer, init = state["gofer_pid"], state["init_pid"]
        nr, args = {"mount": (_SYS_MOUNT, (0, 0, 0, 0, 0)),
                    "kill": (_SYS_KILL, (-1, signal.SIGKILL)),  # (its namespace: no one)
                    "ptrace": (_SYS_PTRACE, (0x4206, 1, 0, 0))}[call]  # PTRACE_SEIZE
        assert inject_syscall(gofer, nr, *args) == "killed"
        deadline = time.monotonic() + 2.0
        while (process_alive(gofer) or process_alive(init)) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not process_alive(gofer), "the gofer survived a syscall outside its allowlist"
        assert not process_alive(init), "the workload outlived its gofer"
        deadline = time.monotonic() + 5.0
        while "the gofer was killed" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        text = log.read_text()
        assert "the gofer was killed by Bad system call (signal 31): a seccomp violation" \
            in text, text
    finally:
        runsc("delete", "--force", cid)
