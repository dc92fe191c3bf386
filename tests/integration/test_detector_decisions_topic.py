"""Every stored decision goes to the decisions topic (key = userId, value = the decision
JSON exactly as stored), the first time and on every redelivery (the same value again),
and a set-aside record's ``error`` decision too. Real Tansu, real Redis, the app's loop."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis

from fraud_common import keys
from tests.conftest import TopicNames
from tests.support.detector_factories import transaction
from tests.support.detector_running import (
    RunningDetector,
    TopicWriter,
    detector_settings,
    new_group,
    read_to_end,
    start_detector,
)
from tools.local_services import RedisServer, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def decisions_topic() -> str:
    return f"decisions-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def detector(
    kafka_bootstrap: str, redis_server: RedisServer, module_topics: TopicNames, decisions_topic: str
) -> Iterator[RunningDetector]:
    running = start_detector(
        detector_settings(
            kafka_bootstrap,
            redis_server.url,
            module_topics,
            new_group(),
            decisions_topic=decisions_topic,  # created by the detector at start
        )
    )
    yield running
    running.stop()


def _stored(store: redis.Redis, transaction_id: str) -> str:
    wait_for(lambda: store.exists(keys.decision(transaction_id)), timeout=30, what="a decision")
    return str(store.get(keys.decision(transaction_id)))


def test_each_decision_is_published_as_stored_and_again_on_redelivery(
    kafka_bootstrap: str,
    detector: RunningDetector,
    store: redis.Redis,
    writer: TopicWriter,
    decisions_topic: str,
) -> None:
    t0 = datetime.now(UTC) - timedelta(minutes=1)
    user = f"archive-{uuid.uuid4().hex[:8]}"
    small = transaction(user=user, at=t0)
    large = transaction(user=user, amount="50000", at=t0 + timedelta(seconds=1))
    writer.send([small, large])
    stored = {t.transactionId: _stored(store, t.transactionId) for t in (small, large)}

    before = detector.status.processed
    writer.send([large])  # redelivered: the stored decision is published again
    wait_for(lambda: detector.status.processed > before, timeout=30, what="the redelivery")

    published = [
        (m.key().decode(), m.value().decode())
        for m in read_to_end(kafka_bootstrap, decisions_topic)
        if json.loads(m.value())["transactionId"] in stored
    ]
    assert sorted(published) == sorted(
        [
            (user, stored[small.transactionId]),
            (user, stored[large.transactionId]),
            (user, stored[large.transactionId]),
        ]
    )
    assert json.loads(stored[large.transactionId])["status"] == "review"


def test_the_error_decision_of_a_set_aside_record_is_published(
    kafka_bootstrap: str,
    detector: RunningDetector,
    store: redis.Redis,
    writer: TopicWriter,
    decisions_topic: str,
) -> None:
    transaction_id = f"broken-{uuid.uuid4().hex[:8]}"
    writer.send([json.dumps({"transactionId": transaction_id, "amount": "x"}).encode()])
    stored = _stored(store, transaction_id)
    assert json.loads(stored)["status"] == "error"

    published = [
        (m.key().decode(), m.value().decode())
        for m in read_to_end(kafka_bootstrap, decisions_topic)
        if json.loads(m.value())["transactionId"] == transaction_id
    ]
    assert published == [("garbage", stored)]  # the writer keys raw bytes "garbage"
