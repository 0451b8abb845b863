"""The report: medians and ratios as a markdown table with the targets, every raw sample
and the machine in JSON, and a bar chart of the ratios (when matplotlib is there)."""
from __future__ import annotations

import json
import os
import platform
import statistics
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from bench.cases import Case, Metric

# runsc-py-ptrace: runsc-py with --platform=ptrace (gVisor's runsc here runs its ptrace
# platform too: the like-for-like comparison).
RUNTIMES = ("runsc-py", "runsc-py-ptrace", "runc", "runsc")
COLUMNS = (*RUNTIMES, "native")
BASELINES = ("runc", "runsc", "native")


@dataclass
class Sample:
    """One run of one case under one runtime: its metric values or why there are none."""

    case: str
    runtime: str
    rep: int
    ok: bool
    values: dict[str, float]
    wall_s: float
    maxrss_kb: int | None
    returncode: int | None
    container_id: str | None
    error: str = ""
    output: str = ""


@dataclass
class Row:
    """One metric: the median per column, failed/total runs per column and the ratios."""

    metric: Metric
    case: Case
    medians: dict[str, float | None]
    failed: dict[str, tuple[int, int]]
    skipped: str = ""
    errors: dict[str, str] = field(default_factory=dict)

    def ratio(self, baseline: str, ours: str = "runsc-py") -> float | None:
        """runsc-py's (or the `ours` column's) median over the baseline column's."""
        ours, base = self.medians.get(ours), self.medians.get(baseline)
        if ours is None or not base:
            return None
        return ours / base

    def target_status(self) -> tuple[str, float | None]:
        """('met' | 'NOT met' | 'no data', the ratio) for the metric's target."""
        target = self.metric.target
        assert target is not None
        ratio = self.ratio(target.baseline)
        if ratio is None:
            return "no data", None
        return ("met" if ratio <= target.factor else "NOT met"), ratio


def summarize(cases: list[Case], samples: list[Sample],
              skipped: dict[str, str]) -> list[Row]:
    """A row per metric of each case, from the samples."""
    rows = []
    for case in cases:
        columns = (*RUNTIMES, "native") if case.native else RUNTIMES
        for metric in case.metrics:
            medians: dict[str, float | None] = {}
            failed: dict[str, tuple[int, int]] = {}
            errors: dict[str, str] = {}
            for col in columns:
                mine = [s for s in samples if s.case == case.name and s.runtime == col]
                values = [s.values[metric.key] for s in mine if s.ok and metric.key in s.values]
                medians[col] = statistics.median(values) if values else None
                failed[col] = (sum(1 for s in mine if not s.ok), len(mine))
                bad = next((s for s in mine if not s.ok), None)
                if bad is not None:
                    errors[col] = bad.error
            rows.append(Row(metric, case, medians, failed, skipped.get(case.name, ""), errors))
    return rows


def fmt(value: float | None) -> str:
    """About three significant digits."""
    if value is None:
        return "–"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def _cell(row: Row, col: str) -> str:
    if row.skipped:
        return "skipped"
    if col not in row.medians:
        return ""
    bad, total = row.failed.get(col, (0, 0))
    value = row.medians[col]
    if value is None:
        return "FAIL" if bad else "–"
    return fmt(value) + (f" ({bad}/{total} failed)" if bad else "")


def _ratio_cell(row: Row, baseline: str, ours: str = "runsc-py") -> str:
    ratio = row.ratio(baseline, ours)
    return "–" if ratio is None else f"{fmt(ratio)}×"


def table(rows: list[Row]) -> str:
    """The markdown table of medians and ratios."""
    head = ["case", "unit", *COLUMNS, "runsc-py/runc", "runsc-py/runsc", "ptrace/runsc"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row.metric.title, row.metric.unit, *(_cell(row, c) for c in COLUMNS),
                 _ratio_cell(row, "runc"), _ratio_cell(row, "runsc"),
                 _ratio_cell(row, "runsc", "runsc-py-ptrace")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def target_lines(rows: list[Row]) -> list[str]:
    """One line per target: met or not, with the measured ratio."""
    lines = []
    for row in rows:
        target = row.metric.target
        if target is None:
            continue
        status, ratio = row.target_status()
        if row.skipped:
            status = "skipped"
        mark = {"met": "✅ met", "NOT met": "❌ NOT met"}.get(status, f"⚠️ {status}")
        measured = "" if ratio is None else f": runsc-py/{target.baseline} = {fmt(ratio)}"
        lines.append(f"{mark} — {row.metric.title} (target {target.describe()}){measured}")
    return lines


def machine_info() -> dict:
    """CPU model, cores, kernel, OS, Python and the date."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    os_name = ""
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(),
            "os": os_name, "python": platform.python_version(),
            "date": datetime.now().astimezone().isoformat(timespec="seconds")}


def markdown(rows: list[Row], meta: dict) -> str:
    """The whole latest.md: header, table, targets, notes, failures."""
    m = meta["machine"]
    out = ["# runsc-py benchmarks", "",
           f"{m['date']} · {m['cpu']} · {m['cores']} cores · kernel {m['kernel']} · "
           f"{m['os']}", "",
           f"Medians over {meta['reps']} repetitions{' (--quick)' if meta['quick'] else ''}, "
           "runtimes interleaved round-robin within each repetition. Runtimes: "
           + "; ".join(f"{k}: {v}" for k, v in meta["versions"].items()) + ".", "",
           table(rows), "", "## Targets", ""]
    out += [f"- {line}" for line in target_lines(rows)] or ["- (no case with a target ran)"]
    out += ["", "## Notes", "",
            "- Micro-benchmarks (syscalls, stat, open+read+close, fork+exec) are timed "
            "inside the container by the workload itself (CLOCK_MONOTONIC), so container "
            "start-up is not in them; start-up is the wall time of the whole `run` command "
            "as seen from the host (under GNU time)."]
    seen = set()
    for row in rows:
        for note in (*row.case.notes, row.metric.note):
            if note and note not in seen:
                seen.add(note)
                out.append(f"- {row.metric.title}: {note}")
    problems = []
    for row in rows:
        if row.skipped:
            problems.append(f"- {row.case.name}: skipped: {row.skipped}")
        for col, err in row.errors.items():
            problems.append(f"- {row.case.name} under {col}: {err}")
    if problems:
        out += ["", "## Failures and skips", "", *dict.fromkeys(problems)]
    return "\n".join(out) + "\n"


def write_json(path: Path, rows: list[Row], samples: list[Sample], meta: dict) -> None:
    """Every raw sample, the medians, the targets and the machine."""
    summary = []
    for row in rows:
        entry = {"case": row.case.name, "metric": row.metric.key, "title": row.metric.title,
                 "unit": row.metric.unit, "medians": row.medians,
                 "failed": {k: list(v) for k, v in row.failed.items()},
                 "ratios": {b: row.ratio(b) for b in BASELINES if b in row.medians},
                 "skipped": row.skipped}
        if row.metric.target:
            status, ratio = row.target_status()
            entry["target"] = {"baseline": row.metric.target.baseline,
                               "factor": row.metric.target.factor, "ratio": ratio,
                               "status": status}
        summary.append(entry)
    doc = {**meta, "summary": summary, "samples": [asdict(s) for s in samples]}
    path.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")


def chart(rows: list[Row], path: Path) -> str | None:
    """A bar chart of runsc-py's ratios to each baseline; None, or why it was skipped."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install -e '.[bench]'): no chart"
    shown = [r for r in rows if any(r.ratio(b) for b in BASELINES)]
    if not shown:
        return "no ratios to chart"
    fig, ax = plt.subplots(figsize=(max(7.0, 1.5 * len(shown) + 2), 5))
    width = 0.27
    colours = {"runc": "#4c72b0", "runsc": "#dd8452", "native": "#55a868"}
    for i, baseline in enumerate(BASELINES):
        xs = [k + (i - 1) * width for k, r in enumerate(shown) if r.ratio(baseline)]
        ys = [r.ratio(baseline) for r in shown if r.ratio(baseline)]
        if xs:
            bars = ax.bar(xs, ys, width, label=f"runsc-py / {baseline}",
                          color=colours[baseline])
            ax.bar_label(bars, labels=[f"{fmt(y)}×" for y in ys], fontsize=7, padding=2)
    labelled = False
    for k, row in enumerate(shown):
        target = row.metric.target
        if target and row.ratio(target.baseline):
            x = k + (BASELINES.index(target.baseline) - 1) * width
            ax.hlines(target.factor, x - width / 2, x + width / 2, colors="red",
                      linewidth=2, label=None if labelled else "target")
            labelled = True
    ax.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
    ax.set_yscale("log")
    ax.set_ylabel("ratio of medians (log scale; lower is better)")
    ax.set_xticks(range(len(shown)))
    ax.set_xticklabels([r.case.name if r.metric.key == r.case.name else r.metric.key
                        for r in shown], rotation=20, ha="right")
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    ax.legend(unique.values(), unique.keys(), fontsize=8)
    ax.set_title("runsc-py relative to runc, runsc and native (red: targets)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return None
