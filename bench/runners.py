"""Running one case once: under an OCI runtime (runsc-py, runc, runsc), each with its own
--root and a fresh container ID that is deleted afterwards, or natively on the host."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from bench.rootfs import REPO

GNU_TIME = "/usr/bin/time"


@dataclass
class Outcome:
    """What one process run left behind: exit status, output, wall time, peak RSS."""

    returncode: int | None
    stdout: str
    stderr: str
    wall_s: float
    maxrss_kb: int | None
    container_id: str | None = None
    error: str = ""


def _read(f) -> str:
    f.seek(0)
    return f.read().decode(errors="replace")


def _maxrss(path: Path) -> int | None:
    """The %M GNU time wrote (its last line; a line before it may say the exit status)."""
    try:
        lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
        return int(lines[-1])
    except (OSError, ValueError, IndexError):
        return None


def spawn(cmd: list[str], timeout: float, measure_rss: bool = True) -> Outcome:
    """Run cmd in a new session with stdin closed and stdout/stderr in files, timed.

    With GNU time installed, cmd runs under `time -f %M` for the peak RSS. On timeout the
    process group this call started is killed (nothing else is)."""
    with tempfile.TemporaryDirectory(prefix="bench-run-") as tmp:
        rss_file = Path(tmp) / "rss"
        wrapped = list(cmd)
        if measure_rss and os.access(GNU_TIME, os.X_OK):
            wrapped = [GNU_TIME, "-f", "%M", "-o", str(rss_file), *cmd]
        with open(Path(tmp) / "out", "w+b") as out, open(Path(tmp) / "err", "w+b") as err:
            start = time.perf_counter()
            proc = subprocess.Popen(wrapped, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                    start_new_session=True, cwd=REPO)
            error = ""
            try:
                returncode: int | None = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
                returncode, error = None, f"timed out after {timeout:.0f} s"
            wall = time.perf_counter() - start
            return Outcome(returncode, _read(out), _read(err), wall, _maxrss(rss_file),
                           error=error)


class OCIRuntime:
    """A runc-compatible runtime CLI with a private state directory (--root)."""

    def __init__(self, name: str, command: list[str], root: Path) -> None:
        self.name = name
        self.command = command
        self.root = root
        self.created: list[str] = []

    def missing(self) -> str | None:
        """Why the runtime cannot run here, or None."""
        if not shutil.which(self.command[0]):
            return f"{self.command[0]} is not installed"
        return None

    def base(self) -> list[str]:
        return [*self.command, "--root", str(self.root)]

    def execute(self, bundle: Path, args: list[str], label: str, timeout: float) -> Outcome:
        """`run` the bundle under a unique container ID, then `delete --force` it."""
        missing = self.missing()
        if missing:
            return Outcome(None, "", "", 0.0, None, error=missing)
        cid = f"bench-{label}-{self.name}-{uuid.uuid4().hex[:10]}"
        self.created.append(cid)
        try:
            outcome = spawn([*self.base(), "run", "--bundle", str(bundle), cid], timeout)
        finally:
            self.delete(cid)
        outcome.container_id = cid
        return outcome

    def delete(self, cid: str) -> None:
        """delete --force: the container is gone after `run`, unless run failed midway."""
        try:
            subprocess.run([*self.base(), "delete", "--force", cid], capture_output=True,
                           stdin=subprocess.DEVNULL, timeout=60, cwd=REPO)
        except subprocess.TimeoutExpired:
            print(f"bench: {self.name} delete --force {cid} timed out", file=sys.stderr)

    def leftovers(self) -> list[str]:
        """Containers still in this runtime's --root (there should be none)."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.name in self.created)

    def version(self) -> str:
        """First line of `--version` (or the project's git commit for runsc-py)."""
        if self.name.startswith("runsc-py"):
            r = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                               capture_output=True, text=True)
            flags = "".join(" " + f for f in self.command[3:])
            if r.returncode == 0 and r.stdout.strip():
                return f"runsc-py {r.stdout.strip()}{flags}"
            try:
                return f"runsc-py {metadata.version('runsc-py')} (no git checkout)"
            except metadata.PackageNotFoundError:
                return "runsc-py (unknown version)"
        try:
            r = subprocess.run([self.command[0], "--version"], capture_output=True, text=True,
                               timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return "unknown"
        return (r.stdout.strip().splitlines() or ["unknown"])[0]


class Native:
    """The helper binaries run directly on the host (the 'native' column)."""

    name = "native"

    def __init__(self, helpers: dict[str, Path]) -> None:
        self.helpers = helpers

    def execute(self, bundle: Path, args: list[str], label: str, timeout: float) -> Outcome:
        """Run the case's container argv with /bin/<helper> mapped to the host build."""
        exe = self.helpers.get(Path(args[0]).name)
        if exe is None:
            return Outcome(None, "", "", 0.0, None, error=f"no native build of {args[0]}")
        return spawn([str(exe), *args[1:]], timeout, measure_rss=False)

    def version(self) -> str:
        return "host " + os.uname().release


def oci_runtimes(state: Path, runsc_py_flags: list[str],
                 platforms: tuple[str, ...] = ("seccomp", "ptrace")) -> list[OCIRuntime]:
    """runsc-py on each platform (with its global flags), runc and runsc (network off),
    each with its own --root under state."""
    ours = [OCIRuntime("runsc-py" if p == "seccomp" else f"runsc-py-{p}",
                       [sys.executable, "-m", "runsc_py.cli", "--platform", p,
                        *runsc_py_flags], state / f"runsc-py-{p}") for p in platforms]
    return [
        *ours,
        OCIRuntime("runc", ["runc"], state / "runc"),
        OCIRuntime("runsc", ["runsc", "--network=none"], state / "runsc"),
    ]
