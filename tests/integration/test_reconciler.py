"""The reconciler with real Redis and a real broker: the detector app in this process
(its consumer and reconciler threads), the transaction-service under gunicorn.

Lost work is simulated the way a host crash would leave it: a decision deleted behind
the detector's back, a record stored whose message was never published.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import redis
import requests

from fraud_common import keys
from fraud_common.kafka.config import producer_config
from fraud_common.kafka.producer import AckingProducer
from fraud_common.schemas import Transaction
from fraud_detection import RECONCILER_THREAD
from fraud_detection.reconciler import Reconciler
from tests.conftest import TopicNames
from tests.support.detector_running import (
    RunningDetector,
    detector_settings,
    new_group,
    read_to_end,
    start_detector,
)
from tests.support.transaction_server import transaction_server
from tools.devstack import ServiceProcess
from tools.local_services import RedisServer, free_port, wait_for

pytestmark = pytest.mark.integration

LARGE = "large_transaction_detected"
AFTER_SECONDS = 3.0
INTERVAL_SECONDS = 0.3


@pytest.fixture(scope="module")
def detector(
    kafka_bootstrap: str, redis_server: RedisServer, module_topics: TopicNames
) -> Iterator[RunningDetector]:
    running = start_detector(
        detector_settings(
            kafka_bootstrap,
            redis_server.url,
            module_topics,
            new_group(),
            reconcile_after_seconds=AFTER_SECONDS,
            reconcile_interval_seconds=INTERVAL_SECONDS,
        )
    )
    yield running
    running.stop()


def reconciler_of(detector: RunningDetector) -> Reconciler:
    [reconciler] = [t.target for t in detector.threads if t.name == RECONCILER_THREAD]
    assert isinstance(reconciler, Reconciler)
    return reconciler


@pytest.fixture(scope="module")
def service(
    kafka_bootstrap: str, redis_server: RedisServer, module_topics: TopicNames
) -> Iterator[ServiceProcess]:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "REDIS_URL": redis_server.url,
        **module_topics.as_env(),
    }
    with transaction_server(env) as running:
        yield running


def post(service: ServiceProcess, **fields: Any) -> str:
    body = {"userId": f"user-{uuid.uuid4().hex[:10]}", "currency": "USD", **fields}
    body.setdefault("amount", "12.50")
    body.setdefault("location", "New York")
    response = requests.post(f"{service.url}/api/v1/transactions", json=body, timeout=10)
    assert response.status_code == 201, response.text
    return str(response.json()["transactionId"])


def decision_of(store: redis.Redis, transaction_id: str, timeout: float = 30.0) -> dict[str, Any]:
    wait_for(
        lambda: store.exists(keys.decision(transaction_id)) == 1,
        timeout=timeout,
        what=f"the decision of {transaction_id}",
    )
    return dict(json.loads(store.get(keys.decision(transaction_id)) or "{}"))


def verdict(decision: dict[str, Any]) -> dict[str, Any]:
    """What a decision says, without when it was made."""
    said = ("status", "riskScore", "reasons", "rulesVersion", "alerts")
    return {k: decision[k] for k in said if k in decision}


def test_a_decision_lost_behind_the_detectors_back_is_restored_without_a_second_alert(
    detector: RunningDetector,
    service: ServiceProcess,
    store: redis.Redis,
    kafka_bootstrap: str,
    module_topics: TopicNames,
) -> None:
    decision_of(store, post(service))  # the consumer has joined its group: decisions are quick

    transaction_id = post(service, amount="15000.00", location="Tokyo")
    first = decision_of(store, transaction_id, timeout=AFTER_SECONDS)
    assert store.zscore(keys.pending(transaction_id), transaction_id) is not None
    redriven_before = reconciler_of(detector).redriven_total
    store.delete(keys.decision(transaction_id))  # what a crash losing Redis's last second does

    restored = decision_of(store, transaction_id, timeout=AFTER_SECONDS + 15)
    assert verdict(restored) == verdict(first)
    assert reconciler_of(detector).redriven_total > redriven_before

    alerts = [
        json.loads(m.value() or b"")
        for m in read_to_end(kafka_bootstrap, module_topics.alerts)
        if json.loads(m.value() or b"")["transaction"]["transactionId"] == transaction_id
    ]
    assert {a["alertType"] for a in alerts} == {LARGE}
    assert len({a["alertId"] for a in alerts}) == 1  # replayed, perhaps, but one alert
    # Once decided again, the next sweep past the age clears the entry.
    wait_for(
        lambda: store.zscore(keys.pending(transaction_id), transaction_id) is None,
        timeout=AFTER_SECONDS + 15,
        what="the pending entry to be cleared",
    )


def test_a_stored_record_never_published_gets_decided(
    detector: RunningDetector, store: redis.Redis, kafka_bootstrap: str, module_topics: TopicNames
) -> None:
    received = datetime.now(UTC) - timedelta(seconds=AFTER_SECONDS * 2)
    transaction = Transaction(
        transactionId=str(uuid.uuid4()),
        userId=f"user-{uuid.uuid4().hex[:10]}",
        amount=Decimal("20000.00"),
        currency="USD",
        location="Paris",
        timestamp=received,
        receivedAt=received,
        amountUsd=Decimal("20000.00"),
        fxRate=Decimal("1"),
    )
    tid = transaction.transactionId
    store.set(keys.transaction(tid), transaction.to_json())
    store.zadd(keys.pending(tid), {tid: int(received.timestamp() * 1000)})

    decision = decision_of(store, tid, timeout=AFTER_SECONDS + 15)
    assert decision["status"] != "pending"

    [message] = [
        m
        for m in read_to_end(kafka_bootstrap, module_topics.transactions)
        if m.key() == transaction.userId.encode()
    ]
    assert json.loads(message.value() or b"") == json.loads(transaction.to_json())
    assert dict(message.headers() or [])["transaction-id"] == tid.encode()


# --- one sweep at a time, without the detector ----------------------------------------


def an_old_record(store: redis.Redis, age_seconds: float = 120.0) -> str:
    received = datetime.now(UTC) - timedelta(seconds=age_seconds)
    transaction = Transaction(
        transactionId=str(uuid.uuid4()),
        userId=f"user-{uuid.uuid4().hex[:10]}",
        amount=Decimal("5.00"),
        currency="USD",
        location="Paris",
        timestamp=received,
        receivedAt=received,
    )
    tid = transaction.transactionId
    store.set(keys.transaction(tid), transaction.to_json())
    store.zadd(keys.pending(tid), {tid: int(received.timestamp() * 1000)})
    return tid


def a_reconciler(client: redis.Redis, producer: AckingProducer, topic: str) -> Reconciler:
    return Reconciler(
        client,
        producer,
        topic=topic,
        interval_seconds=INTERVAL_SECONDS,
        after_seconds=60,
        batch_size=1000,
        ack_timeout_seconds=3,
    )


@pytest.fixture
def own_redis() -> Iterator[redis.Redis]:
    with (
        RedisServer(appendonly=False) as server,
        redis.Redis.from_url(server.url, decode_responses=True) as client,
    ):
        yield client


def test_one_sweep_settles_decided_drops_recordless_and_redrives_the_rest(
    own_redis: redis.Redis,
    kafka_bootstrap: str,
    module_topics: TopicNames,
    caplog: pytest.LogCaptureFixture,
) -> None:
    decided, undecided, recordless = (an_old_record(own_redis) for _ in range(3))
    own_redis.set(keys.decision(decided), '{"status": "approve"}')
    own_redis.delete(keys.transaction(recordless))
    fresh = an_old_record(own_redis, age_seconds=1)  # younger than the age: left alone

    config = producer_config(kafka_bootstrap, client_id="reconciler-test")
    with (
        AckingProducer(config) as producer,
        caplog.at_level(logging.INFO, logger="fraud_detection.reconciler"),
    ):
        result = a_reconciler(own_redis, producer, module_topics.transactions).sweep_safely()

    assert result.redriven == [undecided]
    assert result.settled == 1 and result.missing == [recordless]
    assert own_redis.zscore(keys.pending(decided), decided) is None
    assert own_redis.zscore(keys.pending(recordless), recordless) is None
    rescored = own_redis.zscore(keys.pending(undecided), undecided)
    assert rescored is not None and rescored > (datetime.now(UTC).timestamp() - 10) * 1000
    assert own_redis.zscore(keys.pending(fresh), fresh) is not None

    messages = [r.getMessage() for r in caplog.records]
    assert "re-drove 1 undecided transactions" in messages
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [getattr(r, "transaction_ids", None) for r in warnings] == [[recordless]]


def test_a_locked_shard_is_left_to_its_owner(
    own_redis: redis.Redis, kafka_bootstrap: str, module_topics: TopicNames
) -> None:
    tid = an_old_record(own_redis)
    own_redis.set(keys.pending_lock(keys.pending_shard(tid)), "another-detector", px=60_000)
    with AckingProducer(producer_config(kafka_bootstrap, client_id="reconciler-test")) as p:
        result = a_reconciler(own_redis, p, module_topics.transactions).sweep()
    assert result.redriven == [] and result.skipped_shards == 1
    assert own_redis.zscore(keys.pending(tid), tid) is not None


def test_outages_fail_a_sweep_with_a_warning_and_keep_the_work(
    own_redis: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    tid = an_old_record(own_redis)
    dead_broker = f"127.0.0.1:{free_port()}"
    config = producer_config(dead_broker, client_id="reconciler-test", delivery_timeout_ms=1000)
    with AckingProducer(config) as producer:
        reconciler = a_reconciler(own_redis, producer, "transactions")
        with caplog.at_level(logging.WARNING, logger="fraud_detection.reconciler"):
            result = reconciler.sweep_safely()
        assert result.redriven == [] and result.unacknowledged == 1
        assert own_redis.zscore(keys.pending(tid), tid) is not None  # tried again next time

        unreachable = redis.Redis(port=free_port(), socket_timeout=0.5, decode_responses=True)
        with caplog.at_level(logging.WARNING, logger="fraud_detection.reconciler"):
            a_reconciler(unreachable, producer, "transactions").sweep_safely()  # no raise
    levels = {r.getMessage(): r.levelno for r in caplog.records}
    assert levels["reconcile sweep failed; the next one retries"] == logging.WARNING
    assert any("not acknowledged" in m for m in levels)
