"""The command line and the loop: build the root filesystems, run every case under every
runtime, round-robin within each repetition, and write the report."""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from bench import report
from bench.cases import CASE_NAMES, Case, Run, select
from bench.rootfs import (
    BENCH_DIR,
    DEFAULT_CACHE,
    RootfsUnavailable,
    build_busybox,
    build_debian,
    compile_helpers,
    write_bundle,
)
from bench.runners import Native, OCIRuntime, oci_runtimes

QUICK_REPS = 2
DEFAULT_REPS = 5


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The options of `python3 -m bench`."""
    p = argparse.ArgumentParser(prog="python3 -m bench", description=(
        "Run the benchmark cases under runsc-py, runc and runsc (gVisor), interleaved, "
        "and report medians and ratios."))
    p.add_argument("--reps", type=int, default=None,
                   help=f"repetitions per case and runtime (default {DEFAULT_REPS}, "
                        f"{QUICK_REPS} with --quick)")
    p.add_argument("--quick", action="store_true",
                   help="fewer repetitions and iterations (a smoke test)")
    p.add_argument("--cases", default="",
                   help=f"comma-separated subset of: {', '.join(CASE_NAMES)}")
    p.add_argument("--out", type=Path, default=BENCH_DIR / "results",
                   help="directory for latest.md, <date>.json and ratios.png "
                        "(default bench/results)")
    p.add_argument("--share-cpu", action="store_true",
                   help="run runsc-py with --share-cpu (the workload on the sentry's CPU)")
    p.add_argument("--platforms", default="seccomp,ptrace",
                   help="runsc-py's platforms to run, each a column (default: both)")
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE,
                   help=f"where the Debian rootfs tarball is kept (default {DEFAULT_CACHE})")
    args = p.parse_args(argv)
    if args.reps is None:
        args.reps = QUICK_REPS if args.quick else DEFAULT_REPS
    if args.reps < 1:
        p.error("--reps must be at least 1")
    args.platforms = tuple(x for x in args.platforms.split(",") if x)
    if not args.platforms or set(args.platforms) - {"seccomp", "ptrace"}:
        p.error("--platforms: a comma-separated subset of seccomp,ptrace")
    return args


def log(msg: str) -> None:
    """Progress goes to stderr; the report goes to stdout."""
    print(msg, file=sys.stderr, flush=True)


def measure(case: Case, runner: OCIRuntime | Native, bundle: Path, args: list[str],
            rep: int) -> report.Sample:
    """Run the case once under runner and turn its output into a sample."""
    out = runner.execute(bundle, args, case.name, case.timeout)
    values: dict[str, float] = {}
    error = out.error
    if not error and out.returncode != 0:
        tail = (out.stderr.strip() or out.stdout.strip()).splitlines()[-3:]
        error = f"exit status {out.returncode}: " + " | ".join(tail)[-400:]
    if not error:
        try:
            values = case.measure(Run(out.stdout, out.wall_s, out.maxrss_kb))
        except ValueError as e:
            error = f"unexpected output: {e}"
    return report.Sample(case.name, runner.name, rep, not error, values, out.wall_s,
                         out.maxrss_kb, out.returncode, out.container_id, error,
                         (out.stdout + out.stderr)[-2000:])


def _progress(sample: report.Sample, case: Case, reps: int) -> str:
    head = f"[{case.name} {sample.rep + 1}/{reps}] {sample.runtime:<8}"
    if not sample.ok:
        return f"{head} FAILED: {sample.error.splitlines()[0] if sample.error else ''}"[:240]
    units = {m.key: m.unit for m in case.metrics}
    return head + "  " + ", ".join(f"{report.fmt(v)} {units.get(k, '')}"
                                   for k, v in sample.values.items())


def build_rootfs(cases: list[Case], work: Path, helpers: dict[str, Path],
                 cache: Path) -> tuple[dict[str, Path], dict[str, str]]:
    """The root filesystems the cases need, and {case: why skipped} for the others."""
    rootfs: dict[str, Path] = {}
    skipped: dict[str, str] = {}
    kinds = {c.rootfs for c in cases}
    if "busybox" in kinds:
        rootfs["busybox"] = build_busybox(work / "busybox", helpers)
    if "debian" in kinds:
        try:
            rootfs["debian"] = build_debian(work / "debian", cache, log)
        except RootfsUnavailable as e:
            for c in cases:
                if c.rootfs == "debian":
                    skipped[c.name] = str(e)
            log(f"bench: SKIPPING the Debian cases "
                f"({', '.join(c.name for c in cases if c.rootfs == 'debian')}): {e}")
    return rootfs, skipped


def run_cases(cases: list[Case], runtimes: list[OCIRuntime], native: Native,
              rootfs: dict[str, Path], work: Path, reps: int,
              quick: bool) -> list[report.Sample]:
    """Each case reps times; within a repetition every runtime once, the order rotating."""
    samples = []
    for case in cases:
        if case.rootfs not in rootfs:
            continue
        args = case.args(quick)
        bundle = write_bundle(work / "bundles" / case.name, rootfs[case.rootfs], args,
                              case.tmpfs_tmp)
        runners: list[OCIRuntime | Native] = [*runtimes, *([native] if case.native else [])]
        for rep in range(reps):
            shift = rep % len(runners)
            for runner in runners[shift:] + runners[:shift]:
                sample = measure(case, runner, bundle, args, rep)
                log(_progress(sample, case, reps))
                samples.append(sample)
    return samples


def main(argv: list[str] | None = None) -> int:
    """`python3 -m bench`: 0 when the report was written (whatever the targets say)."""
    opts = parse_args(argv)
    try:
        cases = select(opts.cases)
    except ValueError as e:
        log(f"bench: {e}")
        return 2
    if os.geteuid() != 0:
        log("bench: the runtimes need root (run as root)")
        return 2
    started = time.monotonic()
    opts.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="runsc-py-bench-",
                                     ignore_cleanup_errors=True) as tmp:
        work = Path(tmp)
        helpers = compile_helpers(work / "helpers")
        rootfs, skipped = build_rootfs(cases, work, helpers, opts.cache)
        runtimes = oci_runtimes(work / "state", ["--share-cpu"] if opts.share_cpu else [],
                                opts.platforms)
        native = Native(helpers)
        for rt in runtimes:
            if rt.missing():
                log(f"bench: {rt.name}: {rt.missing()}; its column will show FAIL")
        if "busybox" in rootfs:
            warm = write_bundle(work / "bundles" / "warm-up", rootfs["busybox"], ["/bin/true"])
            for rt in runtimes:
                out = rt.execute(warm, ["/bin/true"], "warmup", 120)
                if out.returncode != 0:
                    log(f"bench: warm-up under {rt.name} failed: {out.error or out.stderr}")
        samples = run_cases(cases, runtimes, native, rootfs, work, opts.reps, opts.quick)
        for rt in runtimes:
            left = rt.leftovers()
            if left:
                log(f"bench: {rt.name} still lists {left} after delete --force")
        elapsed = time.monotonic() - started
        meta = {"machine": report.machine_info(), "reps": opts.reps, "quick": opts.quick,
                "cases": [c.name for c in cases], "elapsed_s": round(elapsed, 1),
                "versions": {r.name: r.version() for r in [*runtimes, native]},
                "skipped": skipped,
                "case_args": {c.name: c.args(opts.quick) for c in cases}}
    rows = report.summarize(cases, samples, skipped)
    md = report.markdown(rows, meta)
    (opts.out / "latest.md").write_text(md)
    stamp = datetime.now().strftime("%Y-%m-%dT%H-%M-%S")
    json_path = opts.out / f"{stamp}.json"
    report.write_json(json_path, rows, samples, meta)
    png = opts.out / "ratios.png"
    why_not = report.chart(rows, png)
    print(report.table(rows))
    print()
    print("Targets:")
    for line in report.target_lines(rows):
        print(f"  {line}")
    print()
    print(f"Wrote {opts.out / 'latest.md'}, {json_path}"
          + (f" and {png}" if why_not is None else f" (chart skipped: {why_not})")
          + f"; took {elapsed:.0f} s.")
    return 0
