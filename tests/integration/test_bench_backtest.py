"""`make bench-backtest` on a small simulation: every run's figures are read off the
backtest's own report line, the runs agree, and the JSON holds the medians. (A smoke
of the benchmark's plumbing: no figure is asserted beyond being measured.)"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from tools import bench_backtest

pytestmark = pytest.mark.integration


def test_the_backtest_benchmark_reports_every_run_and_the_medians(tmp_path: Path) -> None:
    status = bench_backtest.main(
        ["--transactions", "4500", "--users", "300", "--runs", "2", "--form", "both",
         "--workers", "2", "--data-dir", str(tmp_path / "data"),
         "--output-dir", str(tmp_path / "out")]
    )  # fmt: skip
    assert status == 0
    [written] = (tmp_path / "out").glob("*-backtest.json")
    measured = json.loads(written.read_text())["backtest"]
    assert set(measured) == {"recorded", "posted"}
    for figures in measured.values():
        assert figures["same_result"] is True
        assert figures["transactions"] == 4500
        assert len(figures["runs"]) == 2
        assert all(run["evaluations"] == 4500 and run["rate"] > 0 for run in figures["runs"])
        assert "workers " in figures["runs"][0]["split"]
        assert figures["median_rate"] == statistics.median(r["rate"] for r in figures["runs"])
    assert json.loads(written.read_text())["meta"]["reference_seconds"] > 0


def test_a_second_run_the_same_day_keeps_the_first_runs_file(tmp_path: Path) -> None:
    args = ["--transactions", "300", "--users", "30", "--runs", "1", "--workers", "1",
            "--data-dir", str(tmp_path / "data"),
            "--output-dir", str(tmp_path / "out")]  # fmt: skip
    assert bench_backtest.main(args) == 0
    [first] = (tmp_path / "out").glob("*.json")
    before = first.read_text()
    assert bench_backtest.main(args) == 0
    names = {path.name for path in (tmp_path / "out").glob("*.json")}
    assert names == {first.name, first.name.replace("-backtest.json", "-backtest-2.json")}
    assert first.read_text() == before
