"""A broker that is not up yet when the detector starts: it waits, never dies, and
goes to work once the broker is there (creating its topics itself)."""

from __future__ import annotations

import uuid

import pytest
import redis
from confluent_kafka.admin import AdminClient

from fraud_common import keys
from tests.conftest import TopicNames
from tests.support.detector_factories import transaction
from tests.support.detector_running import (
    TopicWriter,
    detector_settings,
    new_group,
    start_detector,
)
from tools.local_services import TansuBroker, free_port, wait_for

pytestmark = pytest.mark.integration


def test_waits_for_a_broker_that_is_not_up_yet(redis_url: str, redis_client: redis.Redis) -> None:
    port = free_port()
    suffix = uuid.uuid4().hex[:8]
    topics = TopicNames(f"transactions-{suffix}", f"fraud-alerts-{suffix}")
    settings = detector_settings(
        f"127.0.0.1:{port}", redis_url, topics, new_group(), topic_setup_timeout_seconds=0.5
    )
    detector = start_detector(settings)
    broker = TansuBroker()
    try:
        wait_for(
            lambda: "cannot create topics" in (detector.status.last_error or ""),
            timeout=30,
            what="a failed attempt to create the topics",
        )
        assert detector.thread.alive
        assert detector.status.processed == 0

        broker.start(port=port)
        admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
        wait_for(
            lambda: topics.transactions_dlq in admin.list_topics(timeout=5).topics,
            timeout=30,
            what="the detector to create its topics",
        )
        txn = transaction(user="late-broker", amount="12000")
        TopicWriter(broker.bootstrap_servers, topics.transactions).send([txn])
        wait_for(
            lambda: redis_client.exists(keys.decision(txn.transactionId)) == 1,
            timeout=45,
            what="the decision once the broker is up",
        )
        assert detector.thread.alive
    finally:
        detector.stop()
        broker.cleanup()
