"""The bench's percentiles and summaries (nearest rank: every figure is a real sample)."""

from __future__ import annotations

import math

import pytest

from tools.bench.stats import latency_summary, percentile, rate


@pytest.mark.parametrize(
    ("pct", "expected"),
    [(1, 1.0), (50, 50.0), (95, 95.0), (99, 99.0), (99.5, 100.0), (100, 100.0)],
)
def test_nearest_rank_of_one_to_a_hundred(pct: float, expected: float) -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, pct) == expected


def test_small_samples_take_the_sample_at_the_rank() -> None:
    assert percentile([0.010], 50) == 0.010
    assert percentile([1.0, 2.0], 50) == 1.0
    assert percentile([1.0, 2.0], 51) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 99) == 4.0


def test_no_samples_is_nan_and_bad_percentiles_are_refused() -> None:
    assert math.isnan(percentile([], 50))
    for bad in (0, -1, 101):
        with pytest.raises(ValueError):
            percentile([1.0], bad)


def test_latency_summary_in_milliseconds() -> None:
    summary = latency_summary([0.003, 0.001, 0.002, 0.1])
    assert summary == {
        "samples": 4,
        "p50_ms": 2.0,
        "p95_ms": 100.0,
        "p99_ms": 100.0,
        "max_ms": 100.0,
    }
    assert latency_summary([]) == {
        "samples": 0,
        "p50_ms": None,
        "p95_ms": None,
        "p99_ms": None,
        "max_ms": None,
    }


def test_rate() -> None:
    assert rate(300, 2.0) == 150.0
    assert rate(5, 0.0) == 0.0
