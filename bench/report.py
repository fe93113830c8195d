"""The bench's one table: a row per figure with its baseline from the same run, printed aligned and
written as JSON with the date, the machine and the commit, so that runs can be compared later."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.load import WrkResult


@dataclass(frozen=True)
class Row:
    figure: str
    value: float | None
    unit: str
    p50_ms: float | None = None
    p99_ms: float | None = None
    baseline: str | None = None
    baseline_value: float | None = None
    errors: int | None = None  # non-2xx answers and socket errors of the row's wrk run
    target: str = ""
    details: dict[str, float] = field(default_factory=dict)
    label: str = ""  # a short name for the baseline column of the rows compared with this one
    max_ms: float | None = None  # the slowest, where a figure keeps every sample (wrk's rows do not)

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.baseline_value:
            return None
        return self.value / self.baseline_value

    def compared_with(self, baseline: Row) -> Row:
        """This row with `baseline`'s figure and value as its baseline."""
        return replace(self, baseline=baseline.label or baseline.figure, baseline_value=baseline.value)


def wrk_row(figure: str, result: WrkResult, unit: str = "req/s", target: str = "", label: str = "") -> Row:
    """A row of a wrk run: answers below 400 per second, with wrk's percentiles and error count."""
    return Row(
        figure=figure,
        value=result.ok_per_second,
        unit=unit,
        p50_ms=result.p50_ms,
        p99_ms=result.p99_ms,
        errors=result.errors,
        target=target,
        label=label,
        details={
            "requests": float(result.requests),
            "seconds": result.seconds,
            "wrk_requests_per_second": result.requests_per_second,
            "non_2xx": float(result.non_2xx),
            "socket_errors": float(result.socket_errors),
        },
    )


COLUMNS = (
    "figure",
    "value",
    "unit",
    "p50 ms",
    "p99 ms",
    "max ms",
    "baseline",
    "baseline value",
    "ratio",
    "errors",
    "target",
)
RIGHT_ALIGNED = {"value", "p50 ms", "p99 ms", "max ms", "baseline value", "ratio", "errors"}


def _number(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.1f}"


def _milliseconds(value: float | None) -> str:
    return "" if value is None else f"{value:,.1f}"


def _cells(row: Row) -> dict[str, str]:
    ratio = row.ratio
    return {
        "figure": row.figure,
        "value": _number(row.value),
        "unit": row.unit,
        "p50 ms": _milliseconds(row.p50_ms),
        "p99 ms": _milliseconds(row.p99_ms),
        "max ms": _milliseconds(row.max_ms),
        "baseline": row.baseline or "",
        "baseline value": _number(row.baseline_value),
        "ratio": "" if ratio is None else f"{ratio:.2f}x",
        "errors": "" if row.errors is None else str(row.errors),
        "target": row.target,
    }


def format_table(rows: list[Row]) -> str:
    cells = [_cells(row) for row in rows]
    # The max column only when a row has one: most figures come from wrk, which reports none.
    columns = [column for column in COLUMNS if column != "max ms" or any(r.max_ms is not None for r in rows)]
    widths = {column: max([len(column)] + [len(c[column]) for c in cells]) for column in columns}

    def line(values: dict[str, str]) -> str:
        return "  ".join(
            values[column].rjust(widths[column])
            if column in RIGHT_ALIGNED
            else values[column].ljust(widths[column])
            for column in columns
        ).rstrip()

    header = line({column: column for column in columns})
    rule = "  ".join("-" * widths[column] for column in columns)
    return "\n".join([header, rule, *(line(c) for c in cells)])


def machine() -> dict[str, Any]:
    """nproc, total memory and the CPU model, as /proc tells them."""
    cpu_model = platform.processor()
    memory_kib = 0
    with open("/proc/cpuinfo") as cpuinfo:
        for entry in cpuinfo:
            if entry.startswith("model name"):
                cpu_model = entry.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as meminfo:
        for entry in meminfo:
            if entry.startswith("MemTotal:"):
                memory_kib = int(entry.split()[1])
                break
    return {
        "nproc": os.cpu_count(),
        "memory_mib": memory_kib // 1024,
        "cpu_model": cpu_model,
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def git_commit(repo: Path) -> dict[str, Any]:
    """The checked-out commit, and whether the work tree differs from it."""

    def git(*arguments: str) -> str:
        done = subprocess.run(["git", *arguments], cwd=repo, capture_output=True, text=True, check=False)
        return done.stdout.strip() if done.returncode == 0 else ""

    return {"commit": git("rev-parse", "HEAD") or None, "dirty": bool(git("status", "--porcelain"))}


def write_json(path: Path, rows: list[Row], repo: Path, options: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "git": git_commit(repo),
        "options": options,
        "rows": [asdict(row) | {"ratio": row.ratio} for row in rows],
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
