"""What every part needs: where the stack is, the sizes of this run, the process monitor."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tools.bench.processes import Monitor
    from tools.stack import DevStack


@dataclass(frozen=True)
class Sizes:
    """How long and how much each part runs (`FULL` by default, `QUICK` for a smoke run)."""

    closed_seconds: float = 20.0
    concurrency: tuple[int, ...] = (8, 32, 128)
    open_rate: float = 500.0
    open_seconds: float = 20.0
    batch_seconds: float = 20.0
    batch_sizes: tuple[int, ...] = (100, 1000)
    batch_concurrency: int = 4
    drain_transactions: int = 200_000
    drain_users: int = 20_000
    drain_processes: tuple[int, ...] = (1, 2)
    latency_rate: float = 200.0
    latency_samples: int = 2000
    quiet_rate: float = 10.0
    """POST -> alert on an otherwise idle stack: this slow, so no request waits on another."""
    quiet_samples: int = 300
    idle_seconds: float = 20.0
    settle_timeout: float = 900.0


FULL = Sizes()
QUICK = Sizes(
    closed_seconds=3.0,
    open_rate=200.0,
    open_seconds=3.0,
    batch_seconds=3.0,
    drain_transactions=5000,
    drain_users=1000,
    latency_samples=300,
    quiet_samples=30,
    idle_seconds=5.0,
    settle_timeout=120.0,
)


@dataclass
class Target:
    """A transaction-service to load (ours, or another with the original API)."""

    name: str
    transactions_url: str
    alerts_url: str | None = None
    """Our alert-service (alerts read from its SSE stream)."""
    alerts_bootstrap: str | None = None
    """A broker whose ``alerts_topic`` carries the alerts (a service with the original API)."""
    alerts_topic: str = "fraud-alerts"
    headers: dict[str, str] = field(default_factory=dict)
    original_api: bool = False
    """Only POST /api/v1/transactions is known to exist (no batch, no Prefer, no GET)."""


@dataclass
class Bench:
    target: Target
    sizes: Sizes
    run: str
    monitor: Monitor
    stack: DevStack | None = None
    redis_url: str | None = None
    started: float = field(default_factory=time.monotonic)
    say: Callable[[str], None] = field(default=lambda line: print(line, file=sys.stderr))

    def progress(self, line: str) -> None:
        self.say(f"bench [{time.monotonic() - self.started:6.1f} s] {line}")

    def cpu_of(self, before: dict[str, float], items: int) -> dict[str, Any]:
        """CPU seconds per process group since ``before`` and per item (ms)."""
        used = self.monitor.between(before, self.monitor.mark())
        return {
            "cpu_s": used,
            "cpu_ms_per_item": {
                name: round(seconds / items * 1000, 3) if items else None
                for name, seconds in used.items()
            },
        }
