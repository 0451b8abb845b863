"""Smoke test of the benchmark suite: `python3 -m bench --quick` on two cases writes the
markdown table, the JSON samples and (with matplotlib) the chart."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_bench_quick_writes_report(tmp_path: Path) -> None:
    out = tmp_path / "results"
    r = subprocess.run([sys.executable, "-m", "bench", "--quick", "--cases", "trapped,startup",
                        "--out", str(out)], cwd=REPO, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]

    md = (out / "latest.md").read_text()
    rows = [line for line in md.splitlines() if line.startswith("| ")][1:]
    titles = [row.split("|")[1].strip() for row in rows]
    assert any(t.startswith("trapped syscall") for t in titles), md
    assert any(t.startswith("start-up") for t in titles), md
    trapped = next(row for row in rows if "trapped syscall" in row).split("|")
    float(trapped[3])  # runsc-py's median is a number
    float(trapped[4])  # runsc-py on the ptrace platform's
    float(trapped[5])  # runc's
    assert "## Targets" in md

    (report,) = out.glob("*.json")
    doc = json.loads(report.read_text())
    assert doc["machine"]["cores"] >= 1 and doc["machine"]["kernel"]
    runtimes = {s["runtime"] for s in doc["samples"]}
    assert {"runsc-py", "runsc-py-ptrace", "runc", "runsc"} <= runtimes
    assert len(doc["samples"]) == 2 * 2 * 4  # 2 cases x 2 quick reps x 4 runtimes

    if importlib.util.find_spec("matplotlib"):
        assert (out / "ratios.png").stat().st_size > 0
