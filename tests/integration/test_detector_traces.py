"""The detector carries the trace of the transaction's ``traceparent`` header to its
decision and alerts (real Tansu, real Redis, the app's own consumer loop), and a
redelivery under another trace keeps the first one, like the decision itself."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import cast

import pytest
import redis
from confluent_kafka import Producer

from fraud_common import keys, tracing
from fraud_common.kafka.headers import transaction_headers
from fraud_common.schemas import Alert, Decision, Transaction
from tests.conftest import TopicNames
from tests.support.detector_factories import transaction
from tests.support.detector_running import (
    RunningDetector,
    detector_settings,
    new_group,
    read_to_end,
    start_detector,
)
from tools.local_services import RedisServer, wait_for

pytestmark = pytest.mark.integration

FIRST = tracing.new_trace()
SECOND = tracing.new_trace()


@pytest.fixture(scope="module")
def detector(
    kafka_bootstrap: str, redis_server: RedisServer, module_topics: TopicNames
) -> Iterator[RunningDetector]:
    running = start_detector(
        detector_settings(kafka_bootstrap, redis_server.url, module_topics, new_group())
    )
    yield running
    running.stop()


def _send(bootstrap: str, topic: str, txn: Transaction, traceparent: str | None) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(
        topic,
        value=txn.to_json().encode(),
        key=txn.userId.encode(),
        headers=list(transaction_headers(txn.transactionId, traceparent)),
    )
    assert producer.flush(15) == 0


def _decision(store: redis.Redis, txn: Transaction) -> Decision:
    wait_for(
        lambda: bool(store.exists(keys.decision(txn.transactionId))),
        timeout=30,
        what="the decision",
    )
    return Decision.model_validate_json(store.get(keys.decision(txn.transactionId)) or "")


def _alerts_of(bootstrap: str, topic: str, txn: Transaction) -> list[tuple[Alert, str | None]]:
    found = []
    for message in read_to_end(bootstrap, topic):
        if (message.value() or b"").startswith(b"end-marker-"):
            continue
        alert = Alert.model_validate_json(message.value() or b"")
        if alert.transaction.transactionId == txn.transactionId:
            pairs = cast(list[tuple[str, bytes | None]], message.headers() or [])
            headers = {k: (v or b"").decode() for k, v in pairs}
            found.append((alert, headers.get(tracing.HEADER)))
    return found


def test_the_first_trace_stays_on_decision_and_alerts(
    detector: RunningDetector,
    kafka_bootstrap: str,
    module_topics: TopicNames,
    redis_server: RedisServer,
) -> None:
    store = redis.Redis.from_url(redis_server.url)
    txn = transaction(user=f"trace-{uuid.uuid4().hex[:8]}", amount="50000")
    _send(kafka_bootstrap, module_topics.transactions, txn, FIRST.header())
    assert _decision(store, txn).traceId == FIRST.trace_id
    before = detector.status.processed
    _send(kafka_bootstrap, module_topics.transactions, txn, SECOND.header())  # a redelivery
    wait_for(lambda: detector.status.processed > before, timeout=30, what="the redelivery")

    alerts: list[tuple[Alert, str | None]] = []

    def both_sent() -> bool:
        alerts[:] = _alerts_of(kafka_bootstrap, module_topics.alerts, txn)
        return len(alerts) >= 2

    wait_for(both_sent, timeout=30, interval=0.2, what="the alert, sent twice")
    assert len({alert.alertId for alert, _ in alerts}) == 1
    for alert, header in alerts:
        assert alert.traceId == FIRST.trace_id
        sent = tracing.parse(header)
        assert sent is not None and sent.trace_id == FIRST.trace_id
    assert _decision(store, txn).traceId == FIRST.trace_id


def test_no_header_no_trace(
    detector: RunningDetector,
    kafka_bootstrap: str,
    module_topics: TopicNames,
    redis_server: RedisServer,
) -> None:
    """A transaction re-driven by the reconciler has no header: no trace is invented."""
    store = redis.Redis.from_url(redis_server.url)
    txn = transaction(user=f"trace-none-{uuid.uuid4().hex[:8]}", amount="50000")
    _send(kafka_bootstrap, module_topics.transactions, txn, None)
    assert _decision(store, txn).traceId is None
    alerts: list[tuple[Alert, str | None]] = []

    def sent() -> bool:
        alerts[:] = _alerts_of(kafka_bootstrap, module_topics.alerts, txn)
        return bool(alerts)

    wait_for(sent, timeout=30, interval=0.2, what="the alert")
    assert [(alert.traceId, header) for alert, header in alerts] == [(None, None)] * len(alerts)
