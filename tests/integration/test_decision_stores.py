"""The backtest's `MemoryDecisionStore` keeps decisions as the detector's
`RedisDecisionStore` does: the same handler over the same batches (a transaction twice
in one batch, then the whole batch redelivered) publishes the same decisions, keeps the
same first ones and counts the same rule stats, once per first decision."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import redis
from prometheus_client import REGISTRY

from fraud_common import keys
from fraud_common.redis_client import connect
from fraud_common.schemas import Transaction
from fraud_detection.decision_store import DecisionStore, MemoryDecisionStore
from fraud_detection.rules_api import RuleStats
from tests.integration.test_decide_batch import make_handler, records
from tests.support.detector_factories import T0, transaction
from tools.backtest_replay import Collector

pytestmark = pytest.mark.integration


def run_twice(
    client: redis.Redis, store: DecisionStore | None, batch: list[Transaction]
) -> tuple[list[str], list[str]]:
    """The decisions published by a first delivery and by its redelivery."""
    collector = Collector()
    handler = make_handler(client, collector, decision_store=store)
    handler.handle(records(batch))
    first = list(collector.decisions)
    collector.decisions.clear()
    handler.handle(records(batch))
    return first, list(collector.decisions)


def test_memory_store_keeps_and_counts_as_redis_does(
    redis_client: redis.Redis, redis_url: str
) -> None:
    batch = [transaction(user=f"u-{n % 4}", at=T0 - timedelta(minutes=n)) for n in range(12)]
    batch.append(batch[2])
    batch += [transaction(user="u-big", amount=amount, at=T0) for amount in ("20000", "15000")]
    in_redis = run_twice(redis_client, None, batch)
    # the second run's state starts empty as the first's did: database 1 of the same server
    with connect(f"{redis_url.removesuffix('/0')}/1") as db1:
        memory = MemoryDecisionStore()
        in_memory = run_twice(db1, memory, batch)
        assert db1.exists(keys.RULE_STATS) == 0  # nothing of the decisions went to Redis

    first, redelivered = in_redis
    assert in_memory[0] == first
    assert in_memory[1] == redelivered == first  # a redelivery gets the first decisions
    stored = {json.loads(text)["transactionId"]: text for text in first}
    assert {tid: d.to_json() for tid, d in memory.first.items()} == stored
    assert len(stored) == len(batch) - 1  # the transaction twice in the batch: stored once

    redis_stats = {
        f"{rule_id}:{counter}": value
        for rule_id, counters in RuleStats(redis_client).read().items()
        for counter, value in counters.items()
        if value
    }
    assert dict(memory.stats) == redis_stats
    assert any(name.endswith(":hits") for name in redis_stats)  # the large ones fired
    assert all(
        value == len(stored) for name, value in redis_stats.items() if name.endswith(":evaluated")
    )


def test_a_handler_without_metrics_decides_alike_and_feeds_no_series(
    redis_client: redis.Redis, redis_url: str
) -> None:
    """``metrics_enabled=False`` (a backtest's): the same decisions, and the process's
    decision counter and latency histogram stay as they were."""
    other = connect(redis_url.removesuffix("/0") + "/1")
    batch = [transaction(user="u-m", amount="15000", at=T0), transaction(user="u-m", at=T0)]

    def series() -> tuple[float | None, float | None]:
        return (
            REGISTRY.get_sample_value("fraud_transactions_evaluated_total", {"decision": "review"}),
            REGISTRY.get_sample_value("fraud_decision_latency_seconds_count"),
        )

    before = series()
    collector = Collector()
    make_handler(other, collector, metrics_enabled=False).handle(records(batch))
    assert series() == before
    counted = Collector()
    make_handler(redis_client, counted).handle(records(batch))
    assert collector.decisions == counted.decisions
    assert series() != before  # the same batch with metrics on does count: the check can fail
