"""Run the detector app in this process against real Kafka and Redis, and look at what
it did: produced alerts, committed offsets, health over real HTTP."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, Producer, TopicPartition
from flask import Flask
from werkzeug.serving import make_server

from fraud_common.background import BackgroundThread, registered
from fraud_common.kafka.consumer_loop import LoopStatus
from fraud_common.schemas import Transaction
from fraud_detection import create_app
from fraud_detection.settings import DetectorSettings
from fraud_detection.worker import DetectorWorker
from tests.conftest import TopicNames
from tools.local_services import free_port


@dataclass
class RunningDetector:
    app: Flask
    settings: DetectorSettings
    thread: BackgroundThread
    """The consumer's thread."""
    threads: list[BackgroundThread]
    """Every background thread of the app (the consumer's, the reconciler's)."""

    @property
    def status(self) -> LoopStatus:
        worker = self.thread.target
        assert isinstance(worker, DetectorWorker)
        return worker.loop.status

    def stop(self) -> None:
        for thread in self.threads:
            if thread.alive:
                thread.stop()
        for close in self.app.extensions.get("fraud_common.closers", []):
            close()


def detector_settings(
    bootstrap: str, redis_url: str, topics: TopicNames, group: str, **overrides: Any
) -> DetectorSettings:
    return DetectorSettings(
        kafka_bootstrap_servers=bootstrap,
        redis_url=redis_url,
        transactions_topic=topics.transactions,
        alerts_topic=topics.alerts,
        consumer_group=group,
        log_level="WARNING",
        app_env="development",  # short test secrets
        **overrides,
    )


def start_detector(settings: DetectorSettings) -> RunningDetector:
    app = create_app(settings)
    threads = registered(app)
    for thread in threads:
        thread.start()
    (consumer,) = [t for t in threads if isinstance(t.target, DetectorWorker)]
    return RunningDetector(app, settings, consumer, threads)


def new_group() -> str:
    return f"detector-test-{uuid.uuid4().hex[:10]}"


class TopicWriter:
    """Produces as the transaction-service does (the transaction's JSON, key = userId) and
    remembers, from the delivery reports, where each partition ends.

    The broker's own high watermark is not used: Tansu reports the base offset of the
    last batch there, not the end of the partition."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.ends: dict[int, int] = {}
        self._producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})

    def send(self, items: Iterable[Transaction | bytes]) -> None:
        def delivered(error: Any, message: Any) -> None:
            assert error is None, error
            partition = message.partition()
            self.ends[partition] = max(self.ends.get(partition, 0), message.offset() + 1)

        for item in items:
            if isinstance(item, Transaction):
                value, key = item.to_json().encode(), item.userId.encode()
            else:
                value, key = item, b"garbage"
            self._producer.produce(self.topic, value=value, key=key, on_delivery=delivered)
        assert self._producer.flush(15) == 0

    def end_offsets(self, partitions: int) -> dict[int, int]:
        return {p: self.ends.get(p, 0) for p in range(partitions)}


def read_to_end(bootstrap: str, topic: str, *, timeout: float = 20.0) -> list[Message]:
    """Every message on ``topic`` up to now: a marker is appended to each partition and
    the topic is read from the beginning until every marker came back."""
    marker = f"end-marker-{uuid.uuid4().hex}".encode()
    producer = Producer({"bootstrap.servers": bootstrap})
    partitions = sorted(producer.list_topics(topic, timeout=10).topics[topic].partitions)
    for partition in partitions:
        producer.produce(topic, value=marker, partition=partition)
    assert producer.flush(15) == 0
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"detector-test-reader-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 10,
        }
    )
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    found: list[Message] = []
    pending = set(partitions)
    deadline = time.monotonic() + timeout
    try:
        while pending and time.monotonic() < deadline:
            for message in consumer.consume(200, 0.2):
                if message.error() is not None:
                    continue
                if message.value() == marker:
                    pending.discard(message.partition())
                elif not (message.value() or b"").startswith(b"end-marker-"):
                    found.append(message)
    finally:
        consumer.close()
    assert not pending, f"partitions {sorted(pending)} of {topic} not read to the end"
    return found


def committed_offsets(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    """The group's committed offset per partition (0 where nothing is committed)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        wanted = [TopicPartition(topic, p) for p in range(partitions)]
        return {tp.partition: max(tp.offset, 0) for tp in consumer.committed(wanted, timeout=10)}
    finally:
        consumer.close()


@contextmanager
def serve(app: Flask) -> Iterator[str]:
    """The app on a real HTTP server on a free port; yields its base URL."""
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        thread.join(10)
