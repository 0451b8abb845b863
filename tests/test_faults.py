"""Faults: SIGKILL of the sentry, the gofer or the runsc-py command at each lifecycle step,
then `delete --force`: nothing is left (processes, cgroups, mounts, state). And a workload
killed after fsync(): every byte it fsynced is in the host file.

The test process is a child subreaper while these run (as containerd's shim is): whatever
the runtime orphans is re-parented to it, so "no process left" is "no descendant left",
whichever process (sentry, gofer, watchdog, spawner, proxy, workload) it is.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
from conftest import REPO, build_static

from runsc_py import launcher
from syscalls import abi, host

IDLE = ["sh", "-c", "while :; do sleep 1; done"]
CGROUP_ROOT = "/sys/fs/cgroup"


# -- what the runtime may leave: counted before and after ------------------------------------
children, descendants = launcher.children, launcher.descendants


def _stat_state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rpartition(b") ")[2].split()[0].decode()
    except OSError:
        return "X"


def reap_zombies() -> None:
    """Reap what was re-parented to us and has exited (only when no subprocess of the
    test is outstanding: its own wait would lose its status)."""
    for pid in children(os.getpid()):
        if _stat_state(pid) == "Z":
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def cgroup_dirs(ids: list[str]) -> list[str]:
    """The cgroup directories named after these containers (v1 per controller, or v2)."""
    found = []
    bases = [CGROUP_ROOT] + [os.path.join(CGROUP_ROOT, c) for c in os.listdir(CGROUP_ROOT)]
    for base in bases:
        for cid in ids:
            d = os.path.join(base, "runsc-py", cid)
            if os.path.isdir(d):
                found.append(d)
    return found


def mount_lines(marks: list[str]) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if any(m in line for m in marks)]


def open_fds() -> list[str]:
    """The test process's descriptors (not those to /proc: the reaper thread's, transient)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # the listing's own, closed by now
        if not target.startswith("/proc/"):
            found.append(f"{fd} -> {target}")
    return sorted(found)


def leftovers(root: Path, ids: list[str], marks: list[str]) -> dict:
    """Everything of these containers still there (empty lists when nothing is)."""
    reap_zombies()
    return {
        "processes": [f"{p} ({_stat_state(p)}): {cmdline(p)}"
                      for p in descendants(os.getpid()) if _stat_state(p) not in "ZX"],
        "cgroups": cgroup_dirs(ids),
        "mounts": mount_lines([*ids, *marks]),
        "state_dirs": [d for d in (os.listdir(root) if root.exists() else []) if d in ids],
    }


NOTHING = {"processes": [], "cgroups": [], "mounts": [], "state_dirs": []}


def wait_for_nothing(root: Path, ids: list[str], marks: list[str],
                     grace: float = 0.0) -> dict:
    deadline = time.monotonic() + grace
    while True:
        left = leftovers(root, ids, marks)
        if left == NOTHING or time.monotonic() >= deadline:
            return left
        time.sleep(0.05)


def _session(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rpartition(b") ")[2].split()[3])
    except OSError:
        return 0


@pytest.fixture
def subreaper():
    """The test process as a subreaper that reaps what comes to it, as a shim does: a
    container's init ends only once every process of its PID namespace is reaped, also
    those re-parented here. Only processes of other sessions (the sentry's) are reaped
    meanwhile: the test's own subprocesses, in its session, are waited for by their Popen."""
    host.prctl(abi.PR_SET_CHILD_SUBREAPER, 1)
    ours = os.getsid(0)
    stop = threading.Event()

    def reap() -> None:
        while not stop.wait(0.02):
            for pid in children(os.getpid()):
                if _stat_state(pid) == "Z" and _session(pid) != ours:
                    try:
                        os.waitpid(pid, os.WNOHANG)
                    except ChildProcessError:
                        pass

    reaper = threading.Thread(target=reap, daemon=True)
    reaper.start()
    try:
        yield
    finally:
        stop.set()
        reaper.join()
        reap_zombies()
        host.prctl(abi.PR_SET_CHILD_SUBREAPER, 0)


# -- the fault matrix ---------------------------------------------------------------------------
STEPS = ("create", "created", "start", "exec", "running", "delete")
CASES = [("sentry", s) for s in STEPS] + [("gofer", s) for s in STEPS] + \
        [("cli", s) for s in ("create", "start", "exec", "running", "delete")]
# Three kills per case. During create, at points of the sentry's set-up it shows from
# outside: it forked (for the gofer: the gofer forked), then its gofer and watchdog are
# there, then the workload's init too. During another command: as it is launched, and twice
# about when it acts: after a seeded multiple (0.9-1.5, by the case's name, so a failure
# can be run again) of how long a runsc-py command takes here to start and answer. exec:
# as it is launched, once the sentry forked its process, and after such a delay.
POINTS = (0, 1, 2)


def _delay(victim: str, step: str, which: int, startup: float) -> float:
    if which == 0:
        return 0.0
    return round(startup * random.Random(f"{victim}-{step}-{which}").uniform(0.9, 1.5), 3)


def _no_traceback(r_stderr: str | bytes) -> None:
    text = r_stderr.decode(errors="replace") if isinstance(r_stderr, bytes) else r_stderr
    assert "Traceback" not in text, text
    # One line of the command's (an exec'd process may have printed its own before: its
    # stderr is the caller's, e.g. an execve that failed as its sentry died).
    lines = [x for x in text.splitlines() if x.strip()]
    assert all(x.startswith("runsc-py: ") for x in lines), f"not a one-line error: {text!r}"


def _wait_until(what, timeout: float = 20.0, step: float = 0.002):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = what()
        if got:
            return got
        time.sleep(step)
    raise AssertionError("timed out waiting for a marker")


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _state(runsc, cid: str) -> dict:
    return json.loads((runsc.root / cid / "state.json").read_text())


def _first_child(pid: int) -> int:
    """The sentry's first child: its gofer (the one forked first, before the watchdog and
    the workload)."""
    kids = [k for k in children(pid) if _stat_state(k) != "Z"]
    if not kids:
        return 0
    return min(kids, key=lambda k: (_start_time(k), k))


def _start_time(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rpartition(b") ")[2].split()[19])
    except OSError:
        return 1 << 62


def _sentry_of(cli: int) -> int:
    """The sentry a detached create forked: a fork of the command that made itself a session
    leader (a child forked to exec ldconfig has the command's cmdline for a moment too)."""
    for k in children(cli):
        try:
            with open(f"/proc/{k}/stat", "rb") as f:
                session = int(f.read().rpartition(b") ")[2].split()[3])
        except OSError:
            continue
        if session == k and cmdline(k) == cmdline(cli):
            return k
    return 0


class Command:
    """A runsc-py command running in the background, its output in files."""

    def __init__(self, runsc, tmp: Path, *args: str) -> None:
        self.out = open(tmp / f"out-{uuid.uuid4().hex[:6]}", "w+b")
        self.err = open(tmp / f"err-{uuid.uuid4().hex[:6]}", "w+b")
        self.proc = subprocess.Popen(runsc.cmd(*args), stdin=subprocess.DEVNULL,
                                     stdout=self.out, stderr=self.err, cwd=REPO)

    def finish(self, timeout: float = 60) -> tuple[int, str]:
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()  # ours, by its pid: the cleanup below still runs
            self.proc.wait()
            raise AssertionError(f"runsc-py {' '.join(self.proc.args[5:])} did not end "
                                 f"within {timeout} s") from None
        finally:
            self.out.close()
        self.err.seek(0)
        err = self.err.read().decode(errors="replace")
        self.err.close()
        return code, err


def _victim_pid(victim: str, runsc, cid: str, cmd: Command | None) -> int:
    if victim == "cli":
        return cmd.proc.pid
    st = _state(runsc, cid)
    return st["pid"] if victim == "sentry" else st["gofer_pid"]


@pytest.mark.parametrize("which", POINTS)
@pytest.mark.parametrize("victim,step", CASES)
def test_sigkill_at_each_step_then_delete_force_leaves_nothing(
        runsc, make_bundle, tmp_path, subreaper, victim, step, which):
    bundle = make_bundle(*IDLE)
    cid = f"f-{victim}-{step}-{uuid.uuid4().hex[:6]}"
    marks = [str(tmp_path)]
    t = time.monotonic()
    runsc("list")  # how long a command takes to start and act, on this machine now
    delay = _delay(victim, step, which, time.monotonic() - t)
    fds_before = open_fds()
    cmd: Command | None = None

    def create() -> None:
        r = runsc("create", "--bundle", str(bundle.path), cid)
        assert r.returncode == 0, r.stderr

    if step == "create":
        cmd = Command(runsc, tmp_path, "create", "--bundle", str(bundle.path), cid)
        sentry = _wait_until(lambda: _sentry_of(cmd.proc.pid))
        need = (which + 1) if victim == "gofer" else (0, 2, 3)[which]
        _wait_until(lambda: len(children(sentry)) >= need or cmd.proc.poll() is not None)
        pid = {"cli": cmd.proc.pid, "sentry": sentry}.get(victim) or _first_child(sentry)
        delay = f"at {need} children of the sentry"
        _kill(pid)
    else:
        if step == "running" and victim == "cli":
            # The command that lives while the container runs: an attached `run`.
            cmd = Command(runsc, tmp_path, "run", "--bundle", str(bundle.path), cid)
            _wait_until(lambda: (runsc.root / cid / "started").exists())
        else:
            create()
        if step not in ("create", "created") and not cmd:
            if step != "start":
                assert runsc("start", cid).returncode == 0
            args = {"start": ("start", cid), "exec": ("exec", cid, "sleep", "30"),
                    "delete": ("delete", "--force", cid)}.get(step)
            if args:
                sentry = _state(runsc, cid)["pid"]
                before = len(descendants(sentry))
                cmd = Command(runsc, tmp_path, *args)
                if step == "exec" and which == 1:
                    # Kill while the process runs (the marker: the sandbox has it).
                    _wait_until(lambda: len(descendants(sentry)) > before)
                    delay = 0
        pid = _victim_pid(victim, runsc, cid, cmd)
        time.sleep(delay)
        _kill(pid)

    if cmd is not None:
        # Fail closed: when the sentry or gofer dies the workload dies, and so the command
        # waiting for it ends (at once; the bound is for a loaded machine).
        code, err = cmd.finish(timeout=15 if victim != "cli" else 60)
        if victim != "cli":
            _no_traceback(err)
        if step == "create" and victim != "cli" and code != 0:
            # A create that failed made nothing: no `delete` is needed after it.
            assert wait_for_nothing(runsc.root, [cid], marks) == NOTHING, err
    for args in (("state", cid), ("list",), ("list", "--format", "json")):
        r = runsc(*args)
        assert r.returncode in (0, 1), (args, r.returncode, r.stderr)
        _no_traceback(r.stderr)
    r = runsc("delete", "--force", cid)
    assert (r.returncode, r.stderr) == (0, ""), f"delay {delay}: {r.stderr}"
    left = wait_for_nothing(runsc.root, [cid], marks)
    assert left == NOTHING, f"delay {delay}"
    assert open_fds() == fds_before
    r = runsc("state", cid)
    assert (r.returncode, r.stderr.strip()) == (1, f"runsc-py: container {cid!r} does not exist")


# -- durability ---------------------------------------------------------------------------------
FSYNC_WRITER = r"""
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
/* Append numbered records to a file, fsync after each, then say so on stdout. */
int main(int argc, char **argv) {
    int fd = open(argv[1], O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd < 0) { perror("open"); return 1; }
    char buf[256];
    long total = 0;
    for (long i = 0;; i++) {
        int n = snprintf(buf, sizeof buf, "record %ld %s\n", i,
                         "0123456789abcdef0123456789abcdef0123456789abcdef");
        if (write(fd, buf, n) != n) { perror("write"); return 1; }
        if (fsync(fd) != 0) { perror("fsync"); return 1; }
        total += n;
        dprintf(1, "synced %ld\n", total);
        usleep(2000);
    }
}
"""


@pytest.fixture(scope="module")
def fsync_writer(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("fsync") / "fsync_writer.c"
    src.write_text(FSYNC_WRITER)
    return build_static(tmp_path_factory, src)


def _expected(upto: int) -> bytes:
    out = b""
    i = 0
    while len(out) < upto:
        out += b"record %d 0123456789abcdef0123456789abcdef0123456789abcdef\n" % i
        i += 1
    return out


@pytest.mark.parametrize("how", ["sentry", "kill-9"])
def test_fsynced_bytes_on_a_bind_mount_survive_a_kill(
        runsc, make_bundle, tmp_path, fsync_writer, subreaper, how):
    host_dir = tmp_path / "data"
    host_dir.mkdir()
    bundle = make_bundle("/writer", "/data/log")
    (bundle.rootfs / "writer").write_bytes(fsync_writer.read_bytes())
    os.chmod(bundle.rootfs / "writer", 0o755)
    bundle.spec["mounts"].append({"destination": "/data", "type": "bind",
                                  "source": str(host_dir), "options": ["rbind", "rw"]})
    bundle.write()
    cid = f"d-{how}-{uuid.uuid4().hex[:6]}"
    out_path = tmp_path / "workload.out"
    with open(out_path, "wb") as out:
        r = subprocess.run(runsc.cmd("create", "--bundle", str(bundle.path), cid),
                           stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                           cwd=REPO, timeout=60)
    assert r.returncode == 0, r.stderr
    assert runsc("start", cid).returncode == 0

    def synced() -> list[int]:
        return [int(line.split()[1]) for line in out_path.read_text().splitlines()
                if line.startswith("synced ") and line.endswith(tuple("0123456789"))]
    _wait_until(lambda: len(synced()) >= 50, timeout=60)
    if how == "sentry":
        _kill(_state(runsc, cid)["pid"])
    else:
        r = runsc("kill", cid, "9")
        assert r.returncode == 0, r.stderr
    _wait_until(lambda: json.loads(runsc("state", cid).stdout)["status"] == "stopped")
    last = max(synced())  # what the workload reported before it was killed
    data = (host_dir / "log").read_bytes()
    assert len(data) >= last
    assert data[:last] == _expected(last)[:last]
    r = runsc("delete", "--force", cid)
    assert (r.returncode, r.stderr) == (0, "")
    assert wait_for_nothing(runsc.root, [cid], [str(tmp_path)]) == NOTHING
