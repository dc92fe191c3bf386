"""A producer whose sends return futures, resolved by a background polling thread.

Callers wait on the futures they need (one HTTP request, one consumed batch) instead
of flushing the whole producer, so concurrent requests never wait for each other.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from types import TracebackType
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

log = logging.getLogger(__name__)

Headers = Sequence[tuple[str, str | bytes]]


class DeliveryFailed(Exception):
    """The broker did not acknowledge a message (timeout, broker down, fatal error)."""

    def __init__(self, error: KafkaError | str) -> None:
        super().__init__(str(error))
        self.error = error


def _is_fatal(error: KafkaError) -> bool:
    return bool(error.fatal()) or error.code() == KafkaError._FATAL


class AckingProducer:
    """Wraps `confluent_kafka.Producer`; `send` returns a `Future` of the delivered message."""

    def __init__(self, config: dict[str, Any], *, poll_interval: float = 0.05) -> None:
        self._config = dict(config)
        self._producer = Producer(self._config)
        self._replace_lock = threading.Lock()
        self._timed_out = threading.Event()
        self._last_wedge_check = 0.0
        self._poll_interval = poll_interval
        self._stopping = threading.Event()
        self._poller = threading.Thread(
            target=self._poll_forever, name="kafka-producer-poll", daemon=True
        )
        self._poller.start()

    def _poll_forever(self) -> None:
        while not self._stopping.is_set():
            producer = self._producer
            try:
                producer.poll(self._poll_interval)
            except KafkaException as exc:  # poll raises librdkafka's fatal errors
                if _is_fatal(exc.args[0]):
                    self._replace(producer, exc.args[0])
                else:
                    log.warning("producer error", extra={"error": str(exc.args[0])})
            if self._timed_out.is_set():
                self._replace_if_wedged(producer)

    def _replace_if_wedged(self, producer: Producer) -> None:
        """A send timed out. If the cluster answers now, the producer itself is stuck: a
        broker that lost its state (Tansu restarted; on Kafka, an expired producer id)
        refuses our producer id while librdkafka, on brokers without KIP-360, only bumps
        the epoch locally and retries until every message times out. While the cluster
        is unreachable, timeouts are expected and the producer is kept."""
        now = time.monotonic()
        if now - self._last_wedge_check < 1.0:
            return
        self._last_wedge_check = now
        self._timed_out.clear()
        try:
            producer.list_topics(timeout=0.5)
        except KafkaException:
            return
        self._replace(producer, "sends time out while the cluster is reachable")

    def _replace(self, failed: Producer, error: KafkaError | str) -> None:
        """After a fatal error (e.g. a broker that lost its state no longer knows our
        idempotent producer id) librdkafka's producer refuses every send for good: fail
        what it still holds and go on with a fresh one."""
        with self._replace_lock:
            if self._producer is not failed:
                return
            log.error("producer unusable; replacing it", extra={"error": str(error)})
            self._producer = Producer(self._config)
        failed.purge()
        with contextlib.suppress(KafkaException):
            failed.poll(0)  # delivery callbacks of the purged messages fail their futures

    def send(
        self,
        topic: str,
        value: str | bytes,
        *,
        key: str | bytes | None = None,
        headers: Headers | None = None,
        partition: int | None = None,
    ) -> Future[Message]:
        """Queue one message; the future resolves on the broker's acknowledgement or fails
        with `DeliveryFailed`. Raises `DeliveryFailed` at once when the local queue is full."""
        future: Future[Message] = Future()

        def on_delivery(error: KafkaError | None, message: Message) -> None:
            if error is not None:
                if error.code() == KafkaError._MSG_TIMED_OUT:
                    self._timed_out.set()
                future.set_exception(DeliveryFailed(error))
            else:
                future.set_result(message)

        kwargs: dict[str, Any] = {"key": key, "value": value, "on_delivery": on_delivery}
        if headers:
            kwargs["headers"] = list(headers)
        if partition is not None:
            kwargs["partition"] = partition
        producer = self._producer
        try:
            producer.produce(topic, **kwargs)
        except BufferError as exc:
            raise DeliveryFailed("local producer queue is full") from exc
        except KafkaException as exc:
            if not _is_fatal(exc.args[0]):
                raise DeliveryFailed(exc.args[0]) from exc
            self._replace(producer, exc.args[0])
            try:  # nothing was queued, so one send on the fresh producer cannot duplicate
                self._producer.produce(topic, **kwargs)
            except (BufferError, KafkaException) as retry_exc:
                raise DeliveryFailed(str(retry_exc)) from retry_exc
        return future

    def flush(self, timeout: float) -> int:
        """Wait up to ``timeout`` s for queued messages; returns how many are still queued."""
        return self._producer.flush(timeout)

    def cluster_reachable(self, timeout: float = 2.0) -> bool:
        """True when the broker answers a metadata request within ``timeout``."""
        try:
            self._producer.list_topics(timeout=timeout)
        except KafkaException:
            return False
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Flush what is queued (bounded), stop the polling thread, then close the client
        (without it librdkafka keeps reconnecting, and logging, until garbage collection)."""
        remaining = self._producer.flush(timeout)
        if remaining:
            log.error("producer closed with undelivered messages", extra={"undelivered": remaining})
        self._stopping.set()
        self._poller.join(timeout=1.0)
        # What the bounded flush left is failed now (its futures raise DeliveryFailed), so
        # that close(), which would otherwise flush again without a bound, returns at once.
        self._producer.purge()
        with contextlib.suppress(KafkaException):
            self._producer.poll(0)
        self._producer.close()

    def __enter__(self) -> AckingProducer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
