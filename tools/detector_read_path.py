"""Detector read path alone: CPU per transaction of the state call's Python side, of
`place_of`, of `evaluate` and of `alerts_for`, in-process on the drain's backlog shape.

    python tools/detector_read_path.py [--transactions 20000] [--tree DIR]

Starts its own redis-server on a free port. ``--tree``: a checkout whose
``fraud-detection-service`` is measured instead of this one (to compare two commits on
a busy machine, alternate runs of both). Each figure is the lower quartile over the
500-transaction batches (``evaluate`` the least of 5 runs on each batch: it is pure),
which a shared machine disturbs far less than a total does.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BATCH = 500


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transactions", type=int, default=20_000)
    parser.add_argument("--tree", type=Path, default=REPO)
    args = parser.parse_args()
    sys.path[:0] = [str(REPO), str(args.tree.resolve() / "fraud-detection-service")]

    import redis

    from fraud_common.money import load_fx_rates
    from fraud_detection.evaluation import alerts_for, evaluate, place_of
    from fraud_detection.geo import load_gazetteer
    from fraud_detection.state import StateEntry, UserState
    from tests.support.rules_files import shipped_rules
    from tools.detector_drain import backlog
    from tools.local_services import RedisServer

    rules, fx, gazetteer = shipped_rules(), load_fx_rates(), load_gazetteer()
    items = backlog(args.transactions, max(1, args.transactions // 10))
    parts: dict[str, list[float]] = {"place": [], "record": [], "evaluate": [], "alerts": []}
    with RedisServer(Path(tempfile.mkdtemp()), appendonly=False) as server:
        state = UserState(
            redis.Redis.from_url(server.url),
            late_allowance_ms=60_000,
            max_entries=1000,
            evaluation_ttl_seconds=3600,
            user_ttl_seconds=3600,
        )
        for i in range(0, len(items), BATCH):
            batch = items[i : i + BATCH]
            t0 = time.process_time()
            places = [place_of(t, gazetteer) for t in batch]
            t1 = time.process_time()
            snapshots = state.record(
                [
                    StateEntry(t, p.coordinates, p.candidates, amount_usd=t.usd_value(fx))
                    for t, p in zip(batch, places, strict=True)
                ],
                evaluated_at_ms=int(time.time() * 1000),
                lookback_ms=int(rules.lookback.total_seconds() * 1000),
                places_lookback_ms=int(rules.places_lookback.total_seconds() * 1000),
                user_ttl_seconds=int(rules.retention.total_seconds()) + 1,
            )
            t2 = time.process_time()
            runs = []
            for _ in range(5):
                start = time.process_time()
                decisions = [
                    evaluate(rules, t, p, s, fx)
                    for t, p, s in zip(batch, places, snapshots, strict=True)
                ]
                runs.append(time.process_time() - start)
            t3 = time.process_time()
            for t, d in zip(batch, decisions, strict=True):
                alerts_for(t, d)
            t4 = time.process_time()
            for name, spent in (
                ("place", t1 - t0),
                ("record", t2 - t1),
                ("evaluate", min(runs)),
                ("alerts", t4 - t3),
            ):
                parts[name].append(spent / len(batch) * 1e6)
    figures = {name: sorted(values)[len(values) // 4] for name, values in parts.items()}
    print(
        " ".join(f"{k}_us={v:.1f}" for k, v in figures.items()),
        f"sum_us={sum(figures.values()):.1f}",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
