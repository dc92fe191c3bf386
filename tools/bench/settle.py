"""Between parts: wait until the detector has caught up with what a part sent, so the next
part is not measured against the last one's backlog."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from tools.bench.context import Bench, Target
from tools.bench.load import Connection, LoadResult
from tools.local_services import wait_for

SAMPLE = 40
"""The last accepted ids checked: every partition's last message is among them (10
partitions, keys spread by user), and the detector keeps each partition in order."""


def settler(bench: Bench, target: Target) -> Callable[[LoadResult], None]:
    if target.original_api:
        return lambda result: None

    def settle(result: LoadResult) -> None:
        ids = [o.value for o in sorted(result.ok(), key=lambda o: o.finished) if o.value]
        waiting = set(ids[-SAMPLE:])
        if not waiting:
            return
        connection = Connection(target.transactions_url, target.headers)
        started = time.monotonic()

        def decided() -> bool:
            for transaction_id in list(waiting):
                status, body = connection.request("GET", f"/api/v1/transactions/{transaction_id}")
                if status == 200 and json.loads(body).get("status") != "pending":
                    waiting.discard(transaction_id)
            return not waiting

        try:
            wait_for(
                decided,
                timeout=bench.sizes.settle_timeout,
                interval=0.2,
                what="the detector to catch up",
            )
        finally:
            connection.close()
        seconds = time.monotonic() - started
        if seconds > 1:
            bench.progress(f"detector caught up {seconds:.1f} s after the part")

    return settle
