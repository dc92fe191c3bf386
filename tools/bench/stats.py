"""Latency and rate summaries (pure functions)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

PERCENTILES = (50, 95, 99)


def percentile(sorted_values: list[float], pct: float) -> float:
    """The nearest-rank percentile ``pct`` (0-100] of ascending ``sorted_values``; NaN
    for none. Nearest rank, so p100 is the maximum and every figure is a real sample."""
    if not sorted_values:
        return math.nan
    if not 0 < pct <= 100:
        raise ValueError("pct must be in (0, 100]")
    rank = math.ceil(pct / 100 * len(sorted_values))
    return sorted_values[max(1, rank) - 1]


def latency_summary(seconds: Iterable[float]) -> dict[str, Any]:
    """``samples``, ``p50_ms`` ``p95_ms`` ``p99_ms`` ``max_ms`` of latencies in seconds
    (None for a figure without samples)."""
    ordered = sorted(seconds)
    summary: dict[str, Any] = {"samples": len(ordered)}
    for pct in PERCENTILES:
        summary[f"p{pct}_ms"] = _ms(percentile(ordered, pct)) if ordered else None
    summary["max_ms"] = _ms(ordered[-1]) if ordered else None
    return summary


def rate(count: int, seconds: float) -> float:
    return round(count / seconds, 1) if seconds > 0 else 0.0


def _ms(value: float) -> float:
    return round(value * 1000, 2)
