"""``python -m tools.bench --quick`` with tiny sizes against the stack it starts itself:
every part runs and lands in the JSON result (figures are not checked: a benchmark
measures, tests do not time)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tools.devstack import REPO

pytestmark = pytest.mark.e2e

SERVICES = {"transaction-service", "fraud-detection-service", "alert-service"}


def test_quick_bench_writes_every_part(tmp_path: Path) -> None:
    out = tmp_path / "results"
    command = [
        sys.executable,
        "-m",
        "tools.bench",
        "--quick",
        "--seconds",
        "0.5",
        "--concurrency",
        "2,4",
        "--open-rate",
        "50",
        "--samples",
        "20",
        "--drain-transactions",
        "300",
        "--idle-seconds",
        "0.5",
        "--state-dir",
        str(tmp_path / "stack"),
        "--output-dir",
        str(out),
        "--log-level",
        "WARNING",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, cwd=REPO)
    print(done.stdout, done.stderr)
    assert done.returncode == 0, done.stderr[-3000:]

    (path,) = out.glob("*.json")
    result = json.loads(path.read_text())
    meta, parts = result["meta"], result["parts"]
    assert path.name.startswith(f"{meta['date']}-{meta['commit']}")
    assert meta["nproc"] >= 1 and meta["failures"] == []
    assert set(parts) == {"idle", "single", "batch", "latency", "drain"}

    assert [row["concurrency"] for row in parts["single"]["closed"]] == [2, 4]
    assert parts["single"]["open"]["offered_per_s"] == 50
    assert [row["batch_size"] for row in parts["batch"]] == [100, 1000]
    for row in [*parts["single"]["closed"], parts["single"]["open"], *parts["batch"]]:
        assert row["items"] > 0 and set(row["statuses"]) == {"201"}
        assert row["p99_ms"] is not None and "cpu_s" in row

    for kind in ("decision", "alert", "inline"):
        assert parts["latency"][kind]["samples"] == 20, kind
        assert parts["latency"][kind]["errors"] == {}, kind
    assert parts["latency"]["inline"]["decisions"].get("pending", 0) == 0
    quiet = parts["latency"]["alert_quiet"]  # --quick's trickle: 30 at 10/s
    assert (quiet["samples"], quiet["offered_per_s"], quiet["errors"]) == (30, 10.0, {})

    assert [row["processes"] for row in parts["drain"]] == [1, 2]
    for row in parts["drain"]:
        assert row["transactions"] == 300 and row["per_second"] > 0
    assert parts["idle"]["broker_cpu_percent"] is not None

    processes = result["processes"]
    assert SERVICES | {"broker", "redis", "load-generator"} <= set(processes)
    for name in SERVICES | {"broker", "redis"}:
        assert processes[name]["cpu_s"] > 0 and processes[name]["peak_rss_mb"] > 0, name
    assert "detector drain, 1 process" in done.stdout  # the table
