"""The benchmark cases: what each runs in the container, how its output becomes numbers,
and the targets runsc-py is measured against."""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.rootfs import DATA_FILE, DATA_SIZE

PYTHON_IMPORTS = "import json, sqlite3, email.parser, decimal"


@dataclass(frozen=True)
class Target:
    """runsc-py's median must be at most `factor` times the `baseline` column's."""

    baseline: str
    factor: float

    def describe(self) -> str:
        return f"runsc-py <= {self.factor:g} x {self.baseline}"


@dataclass(frozen=True)
class Metric:
    """One row of the table: a number each run of a case yields."""

    key: str
    title: str
    unit: str
    target: Target | None = None
    note: str = ""


@dataclass(frozen=True)
class Run:
    """What a runner hands back to a case to turn into metric values."""

    stdout: str
    wall_s: float
    maxrss_kb: int | None


@dataclass(frozen=True)
class Case:
    """A workload, the arguments it runs with (normal and --quick) and its metrics."""

    name: str
    title: str
    rootfs: str
    args: Callable[[bool], list[str]]
    measure: Callable[[Run], dict[str, float]]
    metrics: tuple[Metric, ...]
    native: bool = False
    tmpfs_tmp: bool = False
    timeout: float = 600.0
    notes: tuple[str, ...] = field(default_factory=tuple)


def _field(stdout: str, name: str) -> str:
    m = re.search(rf"^{re.escape(name)}: *(\S+)", stdout, re.MULTILINE)
    if not m:
        raise ValueError(f"no '{name}:' line in the output: {stdout.strip()[-200:]!r}")
    return m.group(1)


def _ns_to_us(key: str) -> Callable[[Run], dict[str, float]]:
    def measure(run: Run) -> dict[str, float]:
        return {key: float(_field(run.stdout, "time")) / 1000}
    return measure


def _fork_exec(run: Run) -> dict[str, float]:
    return {"forkexec": float(_field(run.stdout, "time_ms"))}


def _startup(run: Run) -> dict[str, float]:
    values = {"startup": run.wall_s * 1000}
    if run.maxrss_kb is not None:
        values["startup_rss"] = run.maxrss_kb / 1024
    return values


def _epoch_span_ms(run: Run, per: int) -> float:
    """Milliseconds between the script's `t0:` and `t1:` lines (bash $EPOCHREALTIME)."""
    t0 = float(_field(run.stdout, "t0").replace(",", "."))
    t1 = float(_field(run.stdout, "t1").replace(",", "."))
    return (t1 - t0) * 1000 / per


def python_reps(quick: bool) -> int:
    """python3 runs per container for the import case."""
    return 2 if quick else 5


FILE_COUNT = 1000


def _python_args(quick: bool) -> list[str]:
    script = (f't0=$EPOCHREALTIME; for ((i = 0; i < {python_reps(quick)}; i++)); do '
              f'python3 -c "{PYTHON_IMPORTS}" || exit 1; done; t1=$EPOCHREALTIME; '
              f'echo "runs: {python_reps(quick)}"; echo "t0: $t0"; echo "t1: $t1"')
    return ["/bin/bash", "-c", script]


def _python(run: Run) -> dict[str, float]:
    per = int(_field(run.stdout, "runs"))
    return {"python": _epoch_span_ms(run, per)}


FILES_SCRIPT = """set -e
mkdir /tmp/work && cd /tmp/work
t0=$EPOCHREALTIME
for ((i = 0; i < @COUNT@; i++)); do echo "small file number $i" > "f$i"; done
ls > /dev/null
cat f* > /dev/null
files=(f*)
rm f*
left=(f*)
t1=$EPOCHREALTIME
echo "count: ${#files[@]}"
echo "left: ${left[0]}"
echo "t0: $t0"
echo "t1: $t1"
"""


def _files_args(quick: bool) -> list[str]:
    return ["/bin/bash", "-c", FILES_SCRIPT.replace("@COUNT@", str(FILE_COUNT))]


def _files(run: Run) -> dict[str, float]:
    count = int(_field(run.stdout, "count"))
    if _field(run.stdout, "left") != "f*":
        raise ValueError("the files case left files behind")
    if count != FILE_COUNT:
        raise ValueError(f"the files case saw {count} files")
    return {"files": _epoch_span_ms(run, 1)}


CASES: tuple[Case, ...] = (
    Case("trapped", "trapped syscall round trip (uname)", "busybox",
         lambda q: ["/bin/probe", "time", "2000" if q else "20000", "uname"],
         _ns_to_us("trapped"),
         (Metric("trapped", "trapped syscall round trip (uname)", "µs/call",
                 Target("runsc", 0.2)),)),
    Case("passthrough", "passthrough syscall (getppid)", "busybox",
         lambda q: ["/bin/probe", "time", "10000" if q else "100000", "getppid"],
         _ns_to_us("passthrough"),
         (Metric("passthrough", "passthrough syscall (getppid)", "µs/call",
                 Target("native", 1.1)),),
         native=True),
    Case("stat", "stat of an existing path", "busybox",
         lambda q: ["/bin/probe", "time", "500" if q else "5000", "stat", "/bin/busybox"],
         _ns_to_us("stat"),
         (Metric("stat", "stat /bin/busybox", "µs/op", Target("runsc", 0.3)),)),
    Case("open-read", "open + read 4 KiB + close", "busybox",
         lambda q: ["/bin/openread", "500" if q else "5000", DATA_FILE, str(DATA_SIZE)],
         _ns_to_us("open-read"),
         (Metric("open-read", "open + read 4 KiB + close", "µs/op", Target("runsc", 0.3)),),
         notes=("bench/openread.c, not the probe: the probe's `time N OP` repeats only the "
                "one operation after it, and holds fds 3 and 4 while it runs.",)),
    Case("fork-exec", "fork + exec /bin/true + wait", "busybox",
         lambda q: ["/bin/forkexec", "5" if q else "50", "/bin/true"],
         _fork_exec,
         (Metric("forkexec", "fork + exec /bin/true + wait", "ms"),)),
    Case("startup", "container start-up (run /bin/true)", "busybox",
         lambda q: ["/bin/true"],
         _startup,
         (Metric("startup", "start-up: `run` of /bin/true, wall", "ms", Target("runsc", 0.6)),
          Metric("startup_rss", "start-up: runtime peak RSS", "MiB",
                 note="GNU time's %M: ru_maxrss from wait4, the peak RSS of the largest "
                      "single process among the runtime command and the descendants it "
                      "(transitively) waited for, not their sum. runsc-py: the CLI, the "
                      "sentry, the gofer and the workload; runc: runc, runc init and the "
                      "workload; runsc: runsc and the sandbox and gofer it reaps.")),
         timeout=120.0),
    Case("python", "python3 imports (Debian)", "debian",
         _python_args,
         _python,
         (Metric("python", f'python3 -c "{PYTHON_IMPORTS}"', "ms/run",
                 Target("runc", 1.3)),),
         notes=("Debian bookworm minbase + python3 made by debootstrap; timed inside the "
                "container with bash's $EPOCHREALTIME around several python3 runs, so "
                "container start-up is not included.",)),
    Case("files", f"{FILE_COUNT} small files in /tmp (Debian)", "debian",
         _files_args,
         _files,
         (Metric("files", f"create, ls, cat, rm {FILE_COUNT} small files in /tmp", "ms"),),
         tmpfs_tmp=True,
         notes=("bash builtins write the files, then ls, cat f* and rm f* (coreutils); /tmp "
                "is a tmpfs mount; timed inside the container. Plain `ls`, not `ls -l`: "
                "statx fails with EINVAL under Debian's runsc 20221219, so ls -l and "
                "stat(1) fail there.",)),
)

CASE_NAMES = tuple(c.name for c in CASES)


def select(names: str | None) -> list[Case]:
    """The cases named in a comma-separated list (all when names is empty)."""
    if not names:
        return list(CASES)
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in CASE_NAMES]
    if unknown:
        raise ValueError(f"unknown case(s) {', '.join(unknown)}; "
                         f"choose from {', '.join(CASE_NAMES)}")
    return [c for c in CASES if c.name in wanted]
