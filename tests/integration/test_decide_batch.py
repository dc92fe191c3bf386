"""The handler's decisions, stored by one script call (``scripts/decide_batch.lua``) on
one Redis and one per hash slot on a real 3-master Redis Cluster: the first decision
stays (a redelivery gets it back), every transaction's ready list is pushed and
expires, and a server that lost its scripts gets the script again."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta

import pytest
import redis

from fraud_common import keys
from fraud_common.kafka.consumer_loop import Record
from fraud_common.money import load_fx_rates
from fraud_common.schemas import Transaction
from fraud_detection.decision_store import READY_TTL_SECONDS, DecisionStore
from fraud_detection.geo import load_gazetteer
from fraud_detection.handler import TransactionHandler
from fraud_detection.lists import ListStore
from fraud_detection.state import UserState
from tests.support.detector_factories import T0, transaction
from tests.support.rules_files import shipped_rules
from tools.backtest_replay import DECISIONS, Collector
from tools.redis_cluster import RedisCluster

pytestmark = pytest.mark.integration
DECISION_TTL = 3600


@pytest.fixture(params=["single", "cluster"])
def target(request: pytest.FixtureRequest) -> tuple[redis.Redis, Callable[[], object]]:
    """A client, and how to make its server(s) lose every script (a restart)."""
    if request.param == "single":
        single: redis.Redis = request.getfixturevalue("redis_client")
        return single, single.script_flush
    cluster: RedisCluster = request.getfixturevalue("cluster")

    def flush_nodes() -> None:
        for port in cluster.ports:
            with redis.Redis(port=port) as node:
                node.script_flush()

    return request.getfixturevalue("cluster_client"), flush_nodes


def make_handler(
    client: redis.Redis,
    collector: Collector,
    decision_store: DecisionStore | None = None,
    *,
    metrics_enabled: bool = True,
) -> TransactionHandler:
    return TransactionHandler(
        rules=shipped_rules,
        state=UserState(
            client,
            late_allowance_ms=60_000,
            max_entries=100,
            evaluation_ttl_seconds=3600,
            user_ttl_seconds=3600,
        ),
        lists=ListStore(client),
        redis_client=client,
        producer=collector,
        alerts_topic="alerts",
        fx_rates=load_fx_rates(),
        gazetteer=load_gazetteer,
        decision_ttl_seconds=DECISION_TTL,
        stats_ttl_seconds=60,
        ack_timeout_seconds=10,
        max_event_age=timedelta(days=3650),
        clock=lambda: T0.timestamp(),
        decisions_topic=DECISIONS,  # the collector keeps what is published there
        decision_store=decision_store,
        metrics_enabled=metrics_enabled,
    )


def decision_of(client: redis.Redis, transaction_id: str) -> str:
    value = client.get(keys.decision(transaction_id))
    assert isinstance(value, str), f"no decision stored for {transaction_id}"
    return value


def records(items: list[Transaction]) -> list[Record[Transaction]]:
    return [Record(t, "transactions", 0, i, t.userId, {}) for i, t in enumerate(items)]


def test_decisions_are_stored_once_and_every_ready_list_is_pushed(
    target: tuple[redis.Redis, Callable[[], object]],
) -> None:
    client, lose_scripts = target
    # users spread over many slots; one transaction twice in the batch, one large
    batch = [transaction(user=f"u-{n}", at=T0 - timedelta(minutes=n)) for n in range(20)]
    batch.append(batch[3])
    batch.append(transaction(user="u-large", amount="20000", at=T0))
    collector = Collector()
    handler = make_handler(client, collector)

    handler.handle(records(batch))

    unique = list({t.transactionId: t for t in batch}.values())
    stored = {t.transactionId: decision_of(client, t.transactionId) for t in unique}
    assert sorted(collector.decisions) == sorted(stored.values())  # published as stored
    assert json.loads(stored[batch[-1].transactionId])["status"] != "approve"
    for t in unique:
        assert 0 < client.ttl(keys.decision(t.transactionId)) <= DECISION_TTL
        assert 0 < client.ttl(keys.decision_ready(t.transactionId)) <= READY_TTL_SECONDS
    assert client.llen(keys.decision_ready(batch[3].transactionId)) == 2
    assert client.llen(keys.decision_ready(batch[0].transactionId)) == 1

    # a redelivery, after the server lost its scripts: the same decisions come back
    lose_scripts()
    collector.decisions.clear()
    handler.handle(records(batch))
    assert sorted(collector.decisions) == sorted(stored.values())
    assert {t.transactionId: decision_of(client, t.transactionId) for t in unique} == stored
    assert client.llen(keys.decision_ready(batch[0].transactionId)) == 2
