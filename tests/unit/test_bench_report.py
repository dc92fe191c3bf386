"""The bench's table (figures beside targets) and its JSON file's name and shape."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tools.bench import report


def result(**extra: Any) -> dict[str, Any]:
    return {
        "meta": {"date": "2026-12-01", "commit": "abc1234"},
        "parts": {
            "single": {
                "closed": [
                    {"concurrency": 32, "items_per_s": 1600.0, "p99_ms": 80.0},
                ],
                "open": {"p99_ms": 30.0},
            },
            "batch": [{"batch_size": 100, "items_per_s": 12000.0}],
            "drain": [{"processes": 1, "per_second": 21000.0}],
            "latency": {"alert": {"p99_ms": 45.0}, "alert_quiet": {"p99_ms": 23.0}},
            "idle": {"broker_cpu_percent": 17.2},
        },
        "processes": {
            "transaction-service": {"cpu_s": 1.0, "peak_rss_mb": 90.0, "peak_group_rss_mb": 200.0},
            "broker": {"cpu_s": 2.0, "peak_rss_mb": 30.0, "peak_group_rss_mb": 30.0},
        },
        **extra,
    }


def test_rows_put_each_figure_beside_its_target() -> None:
    rows = {row[0]: row[1:] for row in report.rows(result())}
    assert rows["single POSTs/s, c=32"] == ["1,600/s", ">= 1,500", "yes"]
    assert rows["single POST p99, c=32"] == ["80 ms", "< 50", "NO"]
    assert rows["batch of 100, items/s"] == ["12,000/s", ">= 30,000", "NO"]
    assert rows["detector drain, 1 process"] == ["21,000/s", ">= 20,000", "yes"]
    assert rows["POST -> alert p99 (all alerting)"] == ["45 ms", "< 50", "yes"]
    assert rows["POST -> alert p99, quiet stack"] == ["23 ms", "< 20", "NO"]
    assert rows["broker CPU, idle"] == ["17.2 % core", "< 5", "NO"]
    assert rows["transaction-service peak RSS (one process)"] == ["90 MB", "< 150 MB", "yes"]
    assert "batch of 1,000, items/s" not in rows  # not measured: no row
    assert "broker peak RSS (one process)" not in rows  # the RSS target is per service


def test_a_compared_service_gets_its_own_column() -> None:
    compared = {
        "name": "compared",
        "parts": {
            "single": {"closed": [{"concurrency": 32, "items_per_s": 353.0, "p99_ms": 149.0}]}
        },
    }
    rows = {row[0]: row[1:] for row in report.rows(result(compare=compared))}
    assert rows["single POSTs/s, c=32"] == ["1,600/s", "353/s", ">= 1,500", "yes"]
    assert rows["batch of 100, items/s"] == ["12,000/s", "-", ">= 30,000", "NO"]
    assert report.table(result(compare=compared)).splitlines()[0].split() == [
        "figure",
        "measured",
        "compared",
        "target",
        "met",
    ]


def test_table_lists_every_process() -> None:
    text = report.table(result())
    assert "transaction-service" in text and "broker" in text
    assert text.splitlines()[1].startswith("---")


def test_json_file_is_named_by_date_and_commit_and_never_overwritten(tmp_path: Path) -> None:
    first = report.write(result(), tmp_path)
    second = report.write(result(), tmp_path)
    assert first.name == "2026-12-01-abc1234.json"
    assert second.name == "2026-12-01-abc1234-2.json"
    assert json.loads(first.read_text()) == result()
