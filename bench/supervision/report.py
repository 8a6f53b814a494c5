"""Result rows, summary statistics, the printed table and the JSON file under bench/results/.

A row holds one figure: what was measured, the baseline measured in the same run (if any), the
difference or ratio against it, the target and whether it was met. Raw samples go to the JSON
so a figure can be recomputed or plotted later.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.supervision.fixtures import REPO


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def p90(values: list[float]) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    # nearest-rank p90: with 10 samples this is the 9th, the second largest
    return ordered[max(0, min(len(ordered) - 1, -(-9 * len(ordered) // 10) - 1))]


def summary(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "median": median(values), "p90": p90(values),
            "min": min(values, default=float("nan")), "max": max(values, default=float("nan"))}


@dataclass
class Row:
    id: str
    metric: str
    measured: float
    unit: str
    baseline: float | None = None
    baseline_label: str = ""
    vs_baseline: str = ""  # e.g. "+212 ms" or "2.1x"
    target: str = ""
    ok: bool | None = None
    note: str = ""


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def add(self, row: Row) -> None:
        self.rows.append(row)
        print(f"  {format_row(row)}", flush=True)


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "ms":
        return f"{value:.0f} ms"
    if unit in ("%core", "%"):
        return f"{value:.2f} %"
    if unit == "MiB":
        return f"{value:.1f} MiB"
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "s":
        return f"{value:.2f} s"
    return f"{value:g} {unit}".strip()


def format_row(row: Row) -> str:
    verdict = {True: "ok", False: "MISS", None: ""}[row.ok]
    base = f"{_fmt(row.baseline, row.unit)} ({row.baseline_label})" if row.baseline is not None else "-"
    return f"{row.id:<5} {row.metric:<46} {_fmt(row.measured, row.unit):>11}  {base:<34} {row.vs_baseline:>10}  " \
           f"{row.target:<16} {verdict}"


def print_table(report: Report) -> None:
    header = f"{'id':<5} {'metric':<46} {'measured':>11}  {'baseline (same run)':<34} {'vs base':>10}  " \
             f"{'target':<16} verdict"
    print()
    print(header)
    print("-" * len(header))
    for row in report.rows:
        print(format_row(row))
        if row.note:
            print(f"{'':<6}{row.note}")
    for note in report.notes:
        print(f"note: {note}")


def machine_facts() -> dict[str, Any]:
    import psutil

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO)
    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "cpus": os.cpu_count(),
        "loadavg": os.getloadavg(),
        "memory_total_mib": psutil.virtual_memory().total / 2**20,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "git_commit": commit.stdout.strip(),
        "psutil": psutil.__version__,
        # set in some environments: every CLI start then compiles the project's sources again
        "PYTHONDONTWRITEBYTECODE": os.environ.get("PYTHONDONTWRITEBYTECODE", ""),
    }


def results_prefix() -> Path:
    """bench/results/supervision-<timestamp> (created); the JSON and any profiles share it."""
    out_dir = REPO / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir / f"supervision-{time.strftime('%Y%m%d-%H%M%S')}"


def write_json(report: Report, prefix: Path) -> Path:
    path = Path(f"{prefix}.json")
    data = {"facts": report.facts, "rows": [asdict(r) for r in report.rows], "notes": report.notes,
            "raw": report.raw}
    path.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    return path
