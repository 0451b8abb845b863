"""Fixtures: real busybox bundles, the C probe, a private --root per test, and runc."""
from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Hypothesis profiles: "ci" is loaded here as the default; `--hypothesis-profile=fuzz`
# (the hypothesis pytest plugin's option, applied after this file) selects the long one.
settings.register_profile("ci", max_examples=1000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("fuzz", max_examples=100_000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci")

REPO = Path(__file__).resolve().parent.parent
# The platform under test: CI runs the suite once per platform (README: Tests).
PLATFORM = os.environ.get("RUNSC_PY_PLATFORM", "seccomp")
PLATFORM_FLAGS = ["--platform", PLATFORM] if PLATFORM != "seccomp" else []
RUNSC_PY = [sys.executable, "-m", "runsc_py.cli", *PLATFORM_FLAGS]


@pytest.fixture(scope="session", autouse=True)
def _require_root():
    if os.geteuid() != 0:
        pytest.exit("the tests run real sandboxes and need root", returncode=2)


def build_static(tmp_path_factory, source: Path, *flags: str) -> Path:
    """A test program (C source under tests/), built static so that it runs in any rootfs."""
    out = tmp_path_factory.mktemp(source.stem) / source.stem
    subprocess.run(["gcc", "-static", "-O2", "-Wall", *flags, "-o", str(out), str(source)],
                   check=True)
    return out


@pytest.fixture(scope="session")
def probe_bin(tmp_path_factory) -> Path:
    return build_static(tmp_path_factory, REPO / "tests" / "probe.c")


@pytest.fixture(scope="session")
def rootfs_template(tmp_path_factory, probe_bin) -> Path:
    """A busybox-static rootfs with the probe; copied into each bundle."""
    from runsc_py.bundle import build_busybox_rootfs
    return build_busybox_rootfs(tmp_path_factory.mktemp("template") / "rootfs",
                                {"probe": probe_bin})


def default_spec() -> dict:
    from runsc_py.spec import default_spec as spec
    s = spec()
    s["process"]["terminal"] = False
    return s


class Bundle:
    def __init__(self, path: Path, spec: dict) -> None:
        self.path = path
        self.rootfs = path / "rootfs"
        self.spec = spec

    def write(self) -> Bundle:
        (self.path / "config.json").write_text(json.dumps(self.spec, indent=1))
        return self

    def set_args(self, *args: str) -> Bundle:
        self.spec["process"]["args"] = list(args)
        return self.write()


@pytest.fixture
def make_bundle(tmp_path, rootfs_template):
    counter = iter(range(1000))

    def make(*args: str, readonly: bool = True, **top) -> Bundle:
        path = tmp_path / f"bundle{next(counter)}"
        path.mkdir()
        shutil.copytree(rootfs_template, path / "rootfs", symlinks=True)
        spec = default_spec()
        spec["root"]["readonly"] = readonly
        spec["process"]["args"] = list(args) or ["true"]
        spec.update(top)
        return Bundle(path, spec).write()

    return make


class Runtime:
    """runsc-py with a private --root; deletes what its tests leave behind."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def cmd(self, *args: str) -> list[str]:
        return [*RUNSC_PY, "--root", str(self.root), *args]

    def __call__(self, *args: str, input: str | bytes | None = None, timeout: float = 60,
                 **kw) -> subprocess.CompletedProcess:
        text = not isinstance(input, bytes)
        if "create" not in args:
            return subprocess.run(self.cmd(*args), input=input, capture_output=True,
                                  text=text, timeout=timeout, cwd=kw.pop("cwd", REPO), **kw)
        # A created container keeps the caller's stdio (as under runc): give it files, not
        # pipes, or reading the output would wait for the container to exit.
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            r = subprocess.run(self.cmd(*args), input=input, stdout=out, stderr=err,
                               timeout=timeout, cwd=kw.pop("cwd", REPO), **kw)
            out.seek(0)
            err.seek(0)
            r.stdout, r.stderr = out.read(), err.read()
        if text:
            r.stdout, r.stderr = r.stdout.decode(), r.stderr.decode()
        return r

    def run(self, bundle: Bundle, *args: str, **kw) -> subprocess.CompletedProcess:
        cid = "t-" + uuid.uuid4().hex[:10]
        return self("run", "--bundle", str(bundle.path), *args, cid, **kw)

    def cleanup(self) -> None:
        if not self.root.exists():
            return
        for cid in os.listdir(self.root):
            self("delete", "--force", cid)


@pytest.fixture
def runsc(tmp_path):
    rt = Runtime(tmp_path / "state")
    yield rt
    rt.cleanup()


@pytest.fixture
def runc(tmp_path):
    """Run a bundle under runc, the reference for what a container should see."""
    if not shutil.which("runc"):
        pytest.fail("runc is not installed (the test set-up installs it from Debian)")
    root = tmp_path / "runc-state"

    def run(bundle: Bundle, **kw) -> subprocess.CompletedProcess:
        cid = "r-" + uuid.uuid4().hex[:10]
        try:
            return subprocess.run(["runc", "--root", str(root), "run", "--bundle",
                                   str(bundle.path), cid], capture_output=True, text=True,
                                  timeout=60, **kw)
        finally:
            subprocess.run(["runc", "--root", str(root), "delete", "--force", cid],
                           capture_output=True)

    return run


def probe_lines(out: str) -> dict[str, list[str]]:
    """Probe output as {op: [result, ...]} in order."""
    results: dict[str, list[str]] = {}
    for line in out.splitlines():
        op, _, value = line.partition(": ")
        results.setdefault(op, []).append(value)
    return results


def runsc_py_binary() -> str:
    """A runsc-py executable for daemons to call (Docker's --add-runtime, containerd's
    BinaryName) that runs this checkout's code, as RUNSC_PY does: the installed entry
    point runs whichever checkout was installed last (`pip install -e`), which need not be
    the one under test."""
    tag = hashlib.sha256(f"{REPO} {PLATFORM}".encode()).hexdigest()[:12]
    wrapper = Path(tempfile.gettempdir()) / f"runsc-py-{tag}"
    text = (f"#!/bin/sh\nPYTHONPATH={shlex.quote(str(REPO))} exec "
            f"{shlex.quote(sys.executable)} -m runsc_py.cli {' '.join(PLATFORM_FLAGS)} "
            "\"$@\"\n")
    if not wrapper.exists() or wrapper.read_text() != text:
        tmp = wrapper.with_suffix(f".{os.getpid()}")
        tmp.write_text(text)
        tmp.chmod(0o755)
        tmp.rename(wrapper)
    return str(wrapper)


def proc_status(pid: int, key: str) -> str:
    """A field of /proc/PID/status, read from the host."""
    with open(f"/proc/{pid}/status") as f:
        return next(line.split(":", 1)[1].strip() for line in f if line.startswith(key + ":"))


def process_alive(pid: int) -> bool:
    """Running, or stopped: neither gone nor a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def inject_syscall(pid: int, nr: int, *args: int) -> str:
    """Make pid (waiting in a blocking syscall) make syscall nr, as code taken over in it
    would: ptrace back over the `syscall` instruction it is in, with new registers, and
    let it go on. How that went: "killed" (SECCOMP_RET_KILL_PROCESS), "trapped" (a SIGSYS came,
    and is delivered on detaching) or "ran" (the call was made; the process goes on)."""
    from ptrace.binding import func as ptrace
    wall = 0x40000000
    ptrace.ptrace_attach(pid)
    _, status = os.waitpid(pid, wall)
    assert os.WIFSTOPPED(status)
    regs = ptrace.ptrace_getregs(pid)
    at = regs.rip - 2
    with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        assert os.pread(mem.fileno(), 2, at) == b"\x0f\x05", "not after a syscall instruction"
    regs.rip, regs.rax, regs.orig_rax = at, nr, -1 & 0xFFFFFFFFFFFFFFFF  # no restart
    for reg, value in zip(("rdi", "rsi", "rdx", "r10", "r8", "r9"), args, strict=False):
        setattr(regs, reg, value & 0xFFFFFFFFFFFFFFFF)
    ptrace.ptrace_setregs(pid, regs)
    ptrace.ptrace_cont(pid, 0)
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        got, status = os.waitpid(pid, wall | os.WNOHANG)
        if got:
            break
        time.sleep(0.01)
    else:  # still running: the call was made; stop it to let it go
        os.kill(pid, signal.SIGSTOP)
        os.waitpid(pid, wall)
        ptrace.ptrace_detach(pid, 0)
        return "ran"
    if not os.WIFSTOPPED(status):
        return "killed"
    sig = os.WSTOPSIG(status)
    ptrace.ptrace_detach(pid, sig)  # delivered as it came
    return "trapped" if sig == signal.SIGSYS else "ran"


def mounts_below(path: str) -> list[str]:
    out = subprocess.run(["findmnt", "-rn", "-o", "TARGET"], capture_output=True,
                         text=True).stdout.split()
    return [m for m in out if m == path or m.startswith(path + "/")]


def stop_daemon(daemon: subprocess.Popen, base: str) -> None:
    """End a daemon a fixture started (by its pid), unmount what it left below its private
    directory, and remove that directory only once nothing is mounted below it."""
    daemon.terminate()
    try:
        daemon.wait(timeout=30)
    except subprocess.TimeoutExpired:
        daemon.kill()
        daemon.wait()
    for mount in reversed(mounts_below(base)):
        subprocess.run(["umount", "-l", mount], capture_output=True)
    if not mounts_below(base):
        shutil.rmtree(base, ignore_errors=True)
