"""The alert-service under test: settings on the test's topics and Redis, its background
loops running, served over real HTTP, alerts published to the real broker."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from confluent_kafka import ConsumerGroupTopicPartitions, Message, TopicPartition
from confluent_kafka.admin import AdminClient
from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.test import TestResponse

from alert_service.settings import AlertServiceSettings
from alert_service.stream import FEED_EXTENSION, SHUTDOWN_EXTENSION
from fraud_common.background import registered
from fraud_common.kafka.config import producer_config
from fraud_common.kafka.producer import AckingProducer
from fraud_common.schemas import Alert
from tests.conftest import TopicNames
from tools.local_services import free_port, wait_for


def alert_settings(
    kafka_bootstrap: str, redis_url: str, topics: TopicNames, **overrides: Any
) -> AlertServiceSettings:
    """Settings on the test's own topics, consumer group and Redis."""
    values: dict[str, Any] = {
        "kafka_bootstrap_servers": kafka_bootstrap,
        "redis_url": redis_url,
        "transactions_topic": topics.transactions,
        "alerts_topic": topics.alerts,
        "consumer_group": f"fraud-alert-group-{uuid.uuid4().hex[:10]}",
        "log_level": "INFO",
        "app_env": "development",  # short test secrets
        **overrides,
    }
    return AlertServiceSettings(**values)


@contextmanager
def closing(app: Flask) -> Iterator[Flask]:
    """The app without its background loops (API tests); its clients closed after."""
    try:
        yield app
    finally:
        for close in app.extensions.get("fraud_common.closers", []):
            close()


@contextmanager
def running(app: Flask) -> Iterator[Flask]:
    """Start the app's background loops as the gunicorn hook does; stop and close after."""
    loops = registered(app)
    for loop in loops:
        loop.start()
    try:
        yield app
    finally:
        app.extensions[SHUTDOWN_EXTENSION].set()
        for loop in loops:
            loop.stop()
        for close in app.extensions.get("fraud_common.closers", []):
            close()


@contextmanager
def served(app: Flask) -> Iterator[str]:
    """Serve ``app`` with werkzeug's threaded server on a free port; yields the base URL."""
    server: BaseWSGIServer = make_server("127.0.0.1", free_port(), app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="test-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        app.extensions[SHUTDOWN_EXTENSION].set()  # open streams end within a second
        server.shutdown()
        thread.join(10)
        feed = app.extensions[FEED_EXTENSION]
        wait_for(lambda: feed.open_subscriptions == 0, timeout=10, what="streams to end")


@dataclass(frozen=True)
class Published:
    sent_at: float  # time.monotonic() just before the send
    acked_at: float  # time.monotonic() when the broker acknowledged it
    partition: int
    offset: int


class AlertPublisher:
    """Publishes to the alerts topic as the detector does (key = userId) and waits for acks."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self._producer = AckingProducer(producer_config(bootstrap, client_id="test-publisher"))

    def publish(self, alerts: Iterable[Alert]) -> list[Published]:
        return self.publish_raw((a.to_json(), a.transaction.userId) for a in alerts)

    def publish_raw(self, messages: Iterable[tuple[str | bytes, str]]) -> list[Published]:
        sends = []
        for value, key in messages:
            sent_at = time.monotonic()
            sends.append((sent_at, self._producer.send(self.topic, value, key=key)))
        out = []
        for sent_at, future in sends:
            message = future.result(timeout=30)
            out.append(
                Published(
                    sent_at=sent_at,
                    acked_at=time.monotonic(),
                    partition=int(message.partition() or 0),
                    offset=int(message.offset() or 0),
                )
            )
        return out

    def close(self) -> None:
        self._producer.close()


def committed_offsets(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    """The group's committed offset per partition (-1001 when none), read with the admin
    API so that the probe never touches the group's membership."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    request = ConsumerGroupTopicPartitions(
        group, [TopicPartition(topic, p) for p in range(partitions)]
    )
    result = admin.list_consumer_group_offsets([request])[group].result(timeout=10)
    return {tp.partition: tp.offset for tp in result.topic_partitions}


def next_offsets(published: Iterable[Published], partitions: int) -> dict[int, int]:
    """What a group that consumed ``published`` commits: last offset + 1 per partition,
    -1001 (nothing committed) for the partitions that got nothing. (Tansu's high
    watermarks count record batches, not records, so acknowledged offsets are used.)"""
    out = dict.fromkeys(range(partitions), -1001)
    for p in published:
        out[p.partition] = max(out[p.partition], p.offset + 1)
    return out


def json_of(response: TestResponse) -> Any:
    """The JSON body of a Flask test response (fails the test when there is none)."""
    body = response.get_json(silent=True)
    assert body is not None, response.data[:500]
    return body


def headers_of(message: Message) -> dict[str, str]:
    """A Kafka message's headers as text."""
    raw: Any = message.headers() or []  # a list of (name, bytes) pairs when consumed
    return {
        str(name): value.decode() if isinstance(value, bytes) else str(value or "")
        for name, value in raw
    }
