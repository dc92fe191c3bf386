"""The table at the end (each figure beside the issue's target) and the JSON result file."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SERVICES = ("transaction-service", "fraud-detection-service", "alert-service")
RSS_TARGET_MB = 150.0


@dataclass(frozen=True)
class Figure:
    label: str
    value: Callable[[dict[str, Any]], float | None]
    unit: str
    target: str
    met: Callable[[float], bool]


def _get(*path: Any) -> Callable[[dict[str, Any]], Any]:
    def read(parts: dict[str, Any]) -> Any:
        node: Any = parts
        for step in path:
            if isinstance(node, dict):
                node = node.get(step)
            elif isinstance(node, list) and isinstance(step, int) and step < len(node):
                node = node[step]
            else:
                return None
            if node is None:
                return None
        return node

    return read


def _closed(concurrency: int, key: str) -> Callable[[dict[str, Any]], Any]:
    def read(parts: dict[str, Any]) -> Any:
        for row in _get("single", "closed")(parts) or []:
            if row.get("concurrency") == concurrency:
                return row.get(key)
        return None

    return read


def _batch(size: int) -> Callable[[dict[str, Any]], Any]:
    def read(parts: dict[str, Any]) -> Any:
        for row in parts.get("batch") or []:
            if row.get("batch_size") == size:
                return row.get("items_per_s")
        return None

    return read


def _drain(processes: int) -> Callable[[dict[str, Any]], Any]:
    def read(parts: dict[str, Any]) -> Any:
        for row in parts.get("drain") or []:
            if row.get("processes") == processes:
                return row.get("per_second")
        return None

    return read


def _at_least(bound: float) -> Callable[[float], bool]:
    return lambda value: value >= bound


def _below(bound: float) -> Callable[[float], bool]:
    return lambda value: value < bound


FIGURES: tuple[Figure, ...] = (
    Figure("single POSTs/s, c=8", _closed(8, "items_per_s"), "/s", "", lambda v: True),
    Figure("single POSTs/s, c=32", _closed(32, "items_per_s"), "/s", ">= 1,500", _at_least(1500)),
    Figure("single POST p99, c=32", _closed(32, "p99_ms"), "ms", "< 50", _below(50)),
    Figure("single POSTs/s, c=128", _closed(128, "items_per_s"), "/s", "", lambda v: True),
    Figure(
        "single POST p99, open loop", _get("single", "open", "p99_ms"), "ms", "< 50", _below(50)
    ),
    Figure("batch of 100, items/s", _batch(100), "/s", ">= 30,000", _at_least(30000)),
    Figure("batch of 1,000, items/s", _batch(1000), "/s", ">= 30,000", _at_least(30000)),
    Figure("detector drain, 1 process", _drain(1), "/s", ">= 20,000", _at_least(20000)),
    Figure("detector drain, 2 processes", _drain(2), "/s", "", lambda v: True),
    Figure("POST -> decision p99", _get("latency", "decision", "p99_ms"), "ms", "< 50", _below(50)),
    Figure(
        "POST -> alert p99 (all alerting)",
        _get("latency", "alert", "p99_ms"),
        "ms",
        "< 50",
        _below(50),
    ),
    Figure("inline decision p99", _get("latency", "inline", "p99_ms"), "ms", "< 50", _below(50)),
    Figure(
        "POST -> alert p99, quiet stack",
        _get("latency", "alert_quiet", "p99_ms"),
        "ms",
        "< 20",
        _below(20),
    ),
    Figure("broker CPU, idle", _get("idle", "broker_cpu_percent"), "% core", "< 5", _below(5)),
)


def rows(result: dict[str, Any]) -> list[list[str]]:
    """[figure, ours, compared service (when run), target, met] for every figure measured."""
    parts = result.get("parts", {})
    compare = result.get("compare", {}).get("parts")
    table = []
    for figure in FIGURES:
        value = figure.value(parts)
        other = figure.value(compare) if compare else None
        if value is None and other is None:
            continue
        met = "" if value is None or not figure.target else ("yes" if figure.met(value) else "NO")
        row = [figure.label, _fmt(value, figure.unit)]
        if compare is not None:
            row.append(_fmt(other, figure.unit))
        table.append([*row, figure.target, met])
    for name, stats in sorted(result.get("processes", {}).items()):
        if name in SERVICES:
            peak = stats["peak_rss_mb"]
            met = "yes" if peak < RSS_TARGET_MB else "NO"
            row = [f"{name} peak RSS (one process)", f"{peak:g} MB"]
            if compare is not None:
                row.append("")
            table.append([*row, "< 150 MB", met])
    return table


def table(result: dict[str, Any]) -> str:
    header = ["figure", "measured"]
    if result.get("compare"):
        header.append(result["compare"].get("name", "compared"))
    header += ["target", "met"]
    body = rows(result)
    lines = _aligned([header, *body])
    processes = result.get("processes", {})
    if processes:
        lines += [
            "",
            *_aligned(
                [["process", "CPU s (whole run)", "peak RSS MB (one)", "peak RSS MB (group)"]]
                + [
                    [
                        name,
                        f"{s['cpu_s']:g}",
                        f"{s['peak_rss_mb']:g}",
                        f"{s['peak_group_rss_mb']:g}",
                    ]
                    for name, s in processes.items()
                ]
            ),
        ]
    return "\n".join(lines)


def _aligned(grid: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in grid if i < len(row)) for i in range(len(grid[0]))]
    out = []
    for number, row in enumerate(grid):
        out.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
        if number == 0:
            out.append("  ".join("-" * w for w in widths))
    return out


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "/s":
        return f"{value:,.0f}/s"
    return f"{value:g} {unit}"


def result_path(directory: Path, date: str, commit: str, kind: str = "") -> Path:
    """``<directory>/<date>-<commit>[-<kind>].json``; a second run the same day gets
    ``-2``, ... (never the first run's file)."""
    stem = f"{date}-{commit}" + (f"-{kind}" if kind else "")
    path = directory / f"{stem}.json"
    number = 2
    while path.exists():
        path = directory / f"{stem}-{number}.json"
        number += 1
    return path


def write(result: dict[str, Any], directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    meta = result["meta"]
    path = result_path(directory, meta["date"], meta["commit"])
    path.write_text(json.dumps(result, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return path
