"""The stack idle: what each process burns with nothing to do (the broker above all:
consumers' fetches that return empty)."""

from __future__ import annotations

import time
from typing import Any

from tools.bench.context import Bench


def idle(bench: Bench) -> dict[str, Any]:
    seconds = bench.sizes.idle_seconds
    bench.progress(f"idle: {seconds:g} s with no traffic")
    before = bench.monitor.mark()
    started = time.monotonic()
    time.sleep(seconds)  # the measurement itself: nothing is sent for this long
    elapsed = time.monotonic() - started
    used = bench.monitor.between(before, bench.monitor.mark())
    shares = {name: round(cpu / elapsed * 100, 2) for name, cpu in used.items()}
    bench.progress("idle CPU, % of a core: " + ", ".join(f"{k} {v}" for k, v in shares.items()))
    return {
        "seconds": round(elapsed, 2),
        "cpu_s": used,
        "cpu_percent": shares,
        "broker_cpu_percent": shares.get("broker"),
    }
