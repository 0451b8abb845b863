"""What a platform must not change (issue 13): signals, stops and exit statuses behave as
without a tracer, and --strace reports what the workload did. The suite runs once per
platform (RUNSC_PY_PLATFORM); these cases compare each with runc."""
from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from conftest import PLATFORM, RUNSC_PY


def _runtimes(runsc, tmp_path):
    """(name, command prefix, delete) for runsc-py and runc with private roots."""
    return [("runsc-py", runsc.cmd()),
            ("runc", ["runc", "--root", str(tmp_path / "runc-state")])]


def _wait_file(path: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} never appeared")
        time.sleep(0.02)


def _signal_case(cmd: list[str], bundle, ready: Path, signals: list[str]) -> tuple:
    """Run bundle, send each signal (a second apart) once `ready` exists; (exit status,
    output)."""
    cid = "p-" + uuid.uuid4().hex[:10]
    ready.unlink(missing_ok=True)
    proc = subprocess.Popen([*cmd, "run", "--bundle", str(bundle.path), cid],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_file(ready)
        for sig in signals:
            subprocess.run([*cmd, "kill", cid, sig], capture_output=True, timeout=30)
            time.sleep(1)
        out, _ = proc.communicate(timeout=30)
        return proc.returncode, out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        subprocess.run([*cmd, "delete", "--force", cid], capture_output=True)


def test_a_workload_that_blocks_sigterm_outlives_it(runsc, tmp_path, make_bundle):
    bundle = make_bundle("probe", "block", "15", "ready", "/ready", "sleep", "30",
                         readonly=False)
    got = {name: _signal_case(cmd, bundle, bundle.rootfs / "ready", ["TERM", "KILL"])
           for name, cmd in _runtimes(runsc, tmp_path)}
    assert got["runsc-py"] == got["runc"]
    assert got["runc"][0] == 128 + signal.SIGKILL  # TERM did nothing, KILL ended it


def test_a_workload_that_handles_sigint(runsc, tmp_path, make_bundle):
    bundle = make_bundle("probe", "catch", "2", "ready", "/ready", "sleep", "30",
                         readonly=False)
    got = {name: _signal_case(cmd, bundle, bundle.rootfs / "ready", ["INT"])
           for name, cmd in _runtimes(runsc, tmp_path)}
    assert got["runsc-py"] == got["runc"]
    assert got["runc"] == (0, "catch: 0\nready: 0\ncaught 2\n")


def test_a_segfault_is_status_139(runsc, runc, make_bundle):
    """As init (the kernel's own SIGSEGV reaches pid 1) and as a child of a shell."""
    for bundle in (make_bundle("probe", "segv"),
                   make_bundle("sh", "-c", "probe segv; echo $?")):
        got, want = runsc.run(bundle), runc(bundle)
        assert (got.returncode, got.stdout) == (want.returncode, want.stdout)
    assert want.stdout == "139\n"


def test_stop_and_continue_the_container_init(runsc, tmp_path, make_bundle):
    """SIGSTOP and SIGCONT sent to the container, then a handled SIGINT."""
    bundle = make_bundle("probe", "catch", "2", "ready", "/ready", "sleep", "30",
                         readonly=False)
    got = {name: _signal_case(cmd, bundle, bundle.rootfs / "ready", ["STOP", "CONT", "INT"])
           for name, cmd in _runtimes(runsc, tmp_path)}
    assert got["runsc-py"] == got["runc"] == (0, "catch: 0\nready: 0\ncaught 2\n")


# -- --strace ---------------------------------------------------------------------------
_STRACE_PROBE = ("probe", "open", "/etc/passwd", "rdonly", "0", "read", "3", "5",
                 "open", "/nonexistent", "rdonly", "0", "stat", "/bin", "close", "3",
                 "mkdir", "/tmp/d", "755", "rmdir", "/tmp/d", "uname")


_PID_RESULTS = {"set_tid_address", "getpid", "gettid", "getppid", "clone", "fork", "vfork",
                "wait4", "waitid"}


def _strace_lines(text: str) -> list[tuple[str, str]]:
    """(name, result) of each call in strace-style lines, "name(...) = result [ERRNO ...]"
    (ours, "[pid:tid] " first; strace -f -o's, "pid " first): the result is the errno's
    name for an error, else the value as a number ("?" when there is none)."""
    calls = []
    for line in text.splitlines():
        m = re.match(r"(?:\[[^\]]*\] |\d+ +)?(\w+)\(.*\) += (0x[0-9a-f]+|-?\d+|\?)"
                     r"(?: (E[A-Z0-9]+))?", line)
        if m:
            name, value, err = m.groups()
            if not err and value != "?":
                # Addresses (brk, mmap) differ from run to run, and PIDs between a
                # container's init and strace's child: only what kind of value it is.
                value = ("pid" if name in _PID_RESULTS else
                         "address" if int(value, 0) >= 1 << 16 else str(int(value, 0)))
            calls.append((name, err or value))
    return calls


def test_strace_names_and_results_match_the_real_strace(tmp_path, make_bundle, runsc):
    """--strace of the probe, call by call, against strace(1) of the same probe under
    runc: same names in the same order with the same results (the seccomp platform sees
    the emulated calls only: those are compared)."""
    if not shutil.which("strace"):
        pytest.fail("strace is not installed (debian-packages.txt installs it)")
    bundle = make_bundle(*_STRACE_PROBE, readonly=False)
    log = tmp_path / "strace.log"
    cid = "s-" + uuid.uuid4().hex[:10]
    r = subprocess.run([*runsc.cmd()[:len(RUNSC_PY)], "--strace", "--strace-log", str(log),
                        *runsc.cmd()[len(RUNSC_PY):], "run", "--bundle", str(bundle.path),
                        cid], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    ours = _strace_lines(log.read_text())
    # The real strace, in a runc container: strace itself is copied in with its libraries.
    real_bundle = make_bundle("strace", "-f", "-qq", "-o", "/tmp/strace.out", "probe",
                              *_STRACE_PROBE[1:], readonly=False)
    _install_strace(real_bundle.rootfs)
    rr = subprocess.run(["runc", "--root", str(tmp_path / "runc-state"), "run", "--bundle",
                         str(real_bundle.path), cid], capture_output=True, text=True,
                        timeout=60)
    assert rr.returncode == 0, rr.stderr
    real = _strace_lines((real_bundle.rootfs / "tmp" / "strace.out").read_text())
    real = real[[n for n, _ in real].index("execve") + 1:]  # strace's own exec of the probe
    ours = ours[[n for n, _ in ours].index("execve") + 1:]
    if PLATFORM == "seccomp":
        seen = {n for n, _ in ours}
        real = [c for c in real if c[0] in seen]
    assert ours == real
    assert ("openat", "ENOENT") in ours and ("mkdir", "0") in ours


def _install_strace(rootfs: Path) -> None:
    """strace and the shared libraries it needs, at their paths, in rootfs."""
    binary = shutil.which("strace")
    out = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
    files = [binary] + re.findall(r"(/\S+) \(0x", out)
    for f in files:
        dest = rootfs / f.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(Path(f).resolve(), dest)
    (rootfs / "usr/bin").mkdir(parents=True, exist_ok=True)
    shutil.copy2(binary, rootfs / "usr/bin/strace")


def test_strace_json_and_a_chosen_set(tmp_path, make_bundle, runsc):
    bundle = make_bundle(*_STRACE_PROBE, readonly=False)
    log = tmp_path / "strace.json"
    cid = "s-" + uuid.uuid4().hex[:10]
    r = subprocess.run([*RUNSC_PY, "--strace", "--strace-syscalls", "openat,mkdir",
                        "--strace-format", "json", "--strace-log", str(log),
                        "--root", str(runsc.root), "run", "--bundle", str(bundle.path), cid],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert {rec["name"] for rec in records} == {"openat", "mkdir"}
    passwd = next(rec for rec in records if "/etc/passwd" in rec["call"])
    assert passwd["result"] == 3 and passwd["class"] == "emulate" and passwd["pid"] == 1
    missing = next(rec for rec in records if "/nonexistent" in rec["call"])
    assert missing["errno"] == 2 and missing["sentry_us"] > 0
