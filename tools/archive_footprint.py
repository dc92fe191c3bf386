"""Bytes per transaction in Redis and in the PostgreSQL archive, measured on the local stack.

    python tools/archive_footprint.py [--transactions 20000] [--users 1000]

Starts the local stack (`tools.stack.DevStack`, with its archive) on free ports, sends
the transactions in batches of 1,000 (users round-robin, amounts varied, 1 % large),
waits until every one is decided and archived, then prints one JSON object:

- ``redis``: MEMORY USAGE (SAMPLES 0) of each key kind a transaction leaves, averaged
  over a sample, and per transaction (per-user keys divided by the user's transactions);
- ``postgres``: pg_total_relation_size of each table (heap, TOAST, indexes) per row;
- ``archiver``: CPU seconds the archive-service used per archived message.

docs/SCALING.md quotes its figures.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

_REPO = Path(__file__).resolve().parents[1]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

import psutil  # noqa: E402
import psycopg  # noqa: E402
import redis  # noqa: E402

from fraud_common import keys  # noqa: E402
from tools.local_services import wait_for  # noqa: E402
from tools.stack import DevStack  # noqa: E402

BATCH = 1000


def _post_batch(base: str, items: list[dict[str, Any]]) -> list[str]:
    request = urllib.request.Request(  # noqa: S310 - our own URL
        f"{base}/api/v1/transactions/batch",
        json.dumps({"transactions": items}).encode(),
        {"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
        return list(json.loads(response.read())["transactionIds"])


def _amount(rng: random.Random) -> float:
    """Mostly everyday amounts; 1 in 100 above the large-amount threshold."""
    if rng.random() < 0.01:
        return 15000.0
    return rng.choice([4.99, 12.5, 49.99, 120.0, 980.25])


def _cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def _memory(client: redis.Redis, names: list[str]) -> float:
    sizes = [client.memory_usage(name, samples=0) for name in names]
    found = [s for s in sizes if s]
    return sum(found) / len(found) if found else 0.0


def measure(transactions: int, users: int) -> dict[str, Any]:
    rng = random.Random(7)  # noqa: S311 - test data
    places = ["New York", "Berlin", "Paris", "Tokyo", "London", "Sydney", "Toronto"]
    with (
        tempfile.TemporaryDirectory(prefix="footprint-") as state,
        DevStack.on_free_ports(state_dir=Path(state), log_level="WARNING") as stack,
    ):
        base = stack.service("transaction").url
        archiver = stack.service("archive")
        cpu_before = _cpu_seconds(archiver.pids())
        ids: list[str] = []
        user_of: dict[str, str] = {}
        started = time.monotonic()
        for start in range(0, transactions, BATCH):
            items = []
            for number in range(start, min(start + BATCH, transactions)):
                user = f"footprint-{number % users}"
                items.append(
                    {
                        "userId": user,
                        "amount": f"{_amount(rng):.2f}",
                        "currency": rng.choice(["USD", "EUR", "GBP"]),
                        "location": places[(number // users) % len(places)],
                    }
                )
            batch_ids = _post_batch(base, items)
            for item, transaction_id in zip(items, batch_ids, strict=True):
                user_of[transaction_id] = item["userId"]
            ids.extend(batch_ids)
        url = stack.archive_database_url
        assert url is not None

        def archived() -> bool:
            with psycopg.connect(url, autocommit=True) as connection:
                row = connection.execute("SELECT count(*) FROM decisions").fetchone()
            return row is not None and row[0] >= transactions

        wait_for(archived, timeout=900, interval=1.0, what="every decision archived")
        seconds = time.monotonic() - started
        cpu = _cpu_seconds(archiver.pids()) - cpu_before

        client = redis.Redis.from_url(stack.redis_url)
        sample = rng.sample(ids, min(500, len(ids)))
        sample_users = sorted({user_of[t] for t in sample})[:200]
        per_txn = {
            "record": _memory(client, [keys.transaction(t) for t in sample]),
            "decision": _memory(client, [keys.decision(t) for t in sample]),
            "evaluation": _memory(client, [keys.user_evaluation(user_of[t], t) for t in sample]),
        }
        per_user = {
            "window": _memory(client, [keys.user_window(u) for u in sample_users]),
            "last": _memory(client, [keys.user_last_seen(u) for u in sample_users]),
            "places": _memory(client, [keys.user_places(u) for u in sample_users]),
        }
        per_user_txns = transactions / users
        window_entries = [client.zcard(keys.user_window(u)) for u in sample_users]
        redis_per_txn = sum(per_txn.values()) + sum(per_user.values()) / per_user_txns
        client.close()

        with psycopg.connect(url, autocommit=True) as connection:
            tables = {}
            for table, count in (
                ("transactions", "SELECT count(*) FROM transactions"),
                ("decisions", "SELECT count(*) FROM decisions"),
            ):
                size = connection.execute(
                    "SELECT pg_total_relation_size(%s::regclass)", (table,)
                ).fetchone()
                rows = connection.execute(count).fetchone()
                assert size is not None and rows is not None
                size, rows = size[0], rows[0]
                tables[table] = {"bytes": size, "rows": rows, "bytes_per_row": size / rows}
        postgres_per_txn = sum(t["bytes_per_row"] for t in tables.values())
        return {
            "transactions": transactions,
            "users": users,
            "seconds_to_archive_all": round(seconds, 1),
            "redis": {
                "per_transaction_key_bytes": {k: round(v) for k, v in per_txn.items()},
                "per_user_key_bytes": {k: round(v) for k, v in per_user.items()},
                "window_entries_per_user": sum(window_entries) / len(window_entries),
                "bytes_per_transaction": round(redis_per_txn),
            },
            "postgres": {
                "tables": tables,
                "bytes_per_transaction": round(postgres_per_txn),
            },
            "archiver": {
                "cpu_seconds": round(cpu, 2),
                "cpu_ms_per_message": round(cpu * 1000 / (2 * transactions), 3),
            },
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=20000)
    parser.add_argument("--users", type=int, default=1000)
    args = parser.parse_args()
    print(json.dumps(measure(args.transactions, args.users), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
