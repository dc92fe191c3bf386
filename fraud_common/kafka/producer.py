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
from functools import partial
from types import TracebackType
from typing import Any, NamedTuple

from confluent_kafka import KafkaError, KafkaException, Message, Producer

log = logging.getLogger(__name__)

Headers = Sequence[tuple[str, str | bytes]]


class DeliveryFailed(Exception):
    """The broker did not acknowledge a message (timeout, broker down, fatal error)."""

    def __init__(self, error: KafkaError | str) -> None:
        super().__init__(str(error))
        self.error = error


class Outgoing(NamedTuple):
    """One message for `AckingProducer.send_all`."""

    topic: str
    value: str | bytes
    key: str | bytes | None = None
    headers: Headers | None = None


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
        self._produce(topic, kwargs)
        return future

    def send_all(self, messages: Sequence[Outgoing], timeout: float) -> None:
        """Queue every message and return once the broker acknowledged all of them.

        What ``[send(m) for m in messages]`` and then ``.result()`` on each future in
        order would raise, without a future per message: `DeliveryFailed` for the first
        message (in the given order) that failed, ``TimeoutError`` when an earlier one is
        still unacknowledged after ``timeout`` s. Every message is queued even when an
        early one fails, as with `send`; a retry of the whole call may duplicate some
        (the callers' messages are idempotent or at-least-once)."""
        if not messages:
            return
        batch = _Batch(len(messages), self._timed_out)
        on_delivery = batch.delivered
        for index, message in enumerate(messages):
            kwargs: dict[str, Any] = {
                "key": message.key,
                "value": message.value,
                "on_delivery": partial(on_delivery, index),
            }
            if message.headers:
                kwargs["headers"] = list(message.headers)
            self._produce(message.topic, kwargs)
        batch.wait(timeout)

    def _produce(self, topic: str, kwargs: dict[str, Any]) -> None:
        """``produce`` on the current producer; a fatal error replaces it (as in `send`)."""
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


class _Batch:
    """The delivery reports of one `AckingProducer.send_all`: the positions of the
    messages not yet reported, and the errors by position. Reports arrive on the polling thread
    (or on whichever thread purges a replaced producer), hence the lock."""

    def __init__(self, size: int, timed_out: threading.Event) -> None:
        self._errors: dict[int, KafkaError] = {}
        self._unreported = set(range(size))
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._timed_out = timed_out

    def delivered(self, index: int, error: KafkaError | None, _message: Message) -> None:
        with self._lock:
            if index not in self._unreported:
                return  # librdkafka reports each message once; this guards the count
            self._unreported.discard(index)
            if error is not None:
                self._errors[index] = error
            finished = not self._unreported
        if error is not None and error.code() == KafkaError._MSG_TIMED_OUT:
            self._timed_out.set()
        if finished:
            self._done.set()

    def wait(self, timeout: float) -> None:
        self._done.wait(max(0.0, timeout))
        with self._lock:
            first_unreported = min(self._unreported, default=None)
            failed = [i for i in self._errors if first_unreported is None or i < first_unreported]
        if failed:
            raise DeliveryFailed(self._errors[min(failed)])
        if first_unreported is not None:
            raise TimeoutError(f"{len(self._unreported)} messages not acknowledged in {timeout} s")
