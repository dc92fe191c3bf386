"""When something a POST caused shows up: its decision (in Redis, or through the API when
Redis is not known), its alert (on the alert-service's SSE stream, or on a Kafka topic
for a service with the original API). Each watcher records the arrival time
(``time.perf_counter``) per transaction id, in its own thread."""

from __future__ import annotations

import contextlib
import http.client
import json
import threading
import time
import uuid
from typing import Any, Self

import redis
from confluent_kafka import OFFSET_END, Consumer, KafkaException, TopicPartition

from fraud_common import keys
from tools.bench.load import Connection, loopback_address

POLL_PAUSE_S = 0.002
"""Between polls: a 2 ms resolution, and the poller never spins against Redis or the API."""


class Watcher:
    """Records ``seen[transaction_id] = perf_counter()``; `wait_all` waits for a set."""

    def __init__(self) -> None:
        self.seen: dict[str, float] = {}
        self.changed = threading.Condition()
        self.stopping = threading.Event()
        self.ready = threading.Event()
        self.failure: str | None = None

    def record(self, transaction_id: str, when: float | None = None) -> None:
        with self.changed:
            self.seen.setdefault(transaction_id, when or time.perf_counter())
            self.changed.notify_all()

    def wait_all(self, ids: set[str], timeout: float) -> set[str]:
        """The ids of ``ids`` still not seen after at most ``timeout`` s."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                missing = ids - self.seen.keys()
                left = deadline - time.monotonic()
                if not missing or left <= 0:
                    return missing
                self.changed.wait(min(left, 0.2))

    def start(self) -> Self:
        threading.Thread(target=self._guarded, name=type(self).__name__, daemon=True).start()
        if not self.ready.wait(15):
            raise RuntimeError(f"{type(self).__name__}: {self.failure or 'not ready in 15 s'}")
        return self

    def _guarded(self) -> None:
        try:
            self.run()
        except (OSError, http.client.HTTPException, redis.RedisError, KafkaException) as exc:
            self.failure = f"{type(exc).__name__}: {exc}"
            raise

    def run(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        self.stopping.set()


class DecisionWatcher(Watcher):
    """Polls for the decisions of the transactions `expect`ed, as fast as a round trip
    allows: one pipeline of EXISTS over what is pending (Redis), else GETs of
    ``/api/v1/transactions/<id>`` until the status is no longer ``pending``."""

    def __init__(
        self,
        *,
        redis_url: str | None,
        transactions_url: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.redis_url = redis_url
        self.transactions_url = transactions_url
        self.headers = headers or {}
        self._pending: set[str] = set()

    def expect(self, transaction_id: str) -> None:
        with self.changed:
            if transaction_id not in self.seen:
                self._pending.add(transaction_id)

    def run(self) -> None:
        if self.redis_url:
            self._run_redis(self.redis_url)
        else:
            self._run_http()

    def _run_redis(self, url: str) -> None:
        client = redis.Redis.from_url(url, socket_timeout=5)
        client.ping()
        self.ready.set()
        try:
            while not self.stopping.is_set():
                with self.changed:
                    ids = list(self._pending)
                if not ids:
                    time.sleep(POLL_PAUSE_S)
                    continue
                pipe = client.pipeline(transaction=False)
                for transaction_id in ids:
                    pipe.exists(keys.decision(transaction_id))
                found = pipe.execute()
                now = time.perf_counter()
                self._found([t for t, there in zip(ids, found, strict=True) if there], now)
                time.sleep(POLL_PAUSE_S)
        finally:
            client.close()

    def _run_http(self) -> None:
        connection = Connection(self.transactions_url, self.headers)
        self.ready.set()
        try:
            while not self.stopping.is_set():
                with self.changed:
                    ids = list(self._pending)
                if not ids:
                    time.sleep(POLL_PAUSE_S)
                    continue
                for transaction_id in ids:
                    status, body = connection.request(
                        "GET", f"/api/v1/transactions/{transaction_id}"
                    )
                    if status == 200 and json.loads(body).get("status") != "pending":
                        self._found([transaction_id], time.perf_counter())
                time.sleep(POLL_PAUSE_S)
        finally:
            connection.close()

    def _found(self, ids: list[str], when: float) -> None:
        if not ids:
            return
        with self.changed:
            for transaction_id in ids:
                self._pending.discard(transaction_id)
                self.seen.setdefault(transaction_id, when)
            self.changed.notify_all()


def alert_transaction_id(alert: dict[str, Any]) -> str | None:
    transaction = alert.get("transaction") or {}
    found = transaction.get("transactionId") or transaction.get("id")
    return None if found is None else str(found)


class StreamWatcher(Watcher):
    """Follows the alert-service's live stream (``GET /api/v1/alerts/stream``)."""

    def __init__(self, alerts_url: str, headers: dict[str, str] | None = None) -> None:
        super().__init__()
        self.address = loopback_address(alerts_url)
        self.headers = {"Accept": "text/event-stream", **(headers or {})}

    def run(self) -> None:
        connection = http.client.HTTPConnection(*self.address, timeout=30)
        try:
            connection.request("GET", "/api/v1/alerts/stream", headers=self.headers)
            response = connection.getresponse()
            if response.status != 200:
                self.failure = f"the stream answered {response.status}"
                return
            self.ready.set()
            while not self.stopping.is_set():
                line = response.readline()
                if not line:
                    return
                if line.startswith(b"data:"):
                    found = alert_transaction_id(json.loads(line[5:]))
                    if found:
                        self.record(found)
        finally:
            connection.close()


class TopicWatcher(Watcher):
    """Reads an alerts topic from its end (no consumer group commits anything)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__()
        self.bootstrap, self.topic = bootstrap, topic

    def run(self) -> None:
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"bench-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 10,
            }
        )
        try:
            metadata = consumer.list_topics(self.topic, timeout=10).topics[self.topic]
            if metadata.error is not None:
                self.failure = f"topic {self.topic}: {metadata.error}"
                return
            partitions = []
            for number in metadata.partitions:
                _, high = consumer.get_watermark_offsets(
                    TopicPartition(self.topic, number), timeout=10
                )
                partitions.append(
                    TopicPartition(self.topic, number, high if high >= 0 else OFFSET_END)
                )
            consumer.assign(partitions)
            self.ready.set()
            while not self.stopping.is_set():
                message = consumer.poll(0.1)
                if message is None or message.error() is not None:
                    continue
                with contextlib.suppress(ValueError, AttributeError):
                    found = alert_transaction_id(json.loads(message.value() or b"{}"))
                    if found:
                        self.record(found)
        finally:
            consumer.close()
