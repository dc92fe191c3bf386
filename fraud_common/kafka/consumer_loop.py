"""The at-least-once consumer loop shared by the detector and the alert-service.

    while not stopping:
        batch = consumer.consume(...)
        decode each message             -- one that cannot be decoded is set aside
        handler.handle(decoded batch)   -- a dependency away: retried with backoff
                                           a record failure: bisected down to the
                                           records that fail, which are set aside
        set-aside records: handler.reject(record, reason), then <topic>.dlq
        store the batch's offsets       -- librdkafka commits stored offsets only

Failures come in two kinds (`fraud_common.failures`). While Redis or Kafka is away the
loop keeps the batch in hand, reports itself failing, retries with capped exponential
backoff and goes on by itself when the dependency returns; nothing is stored (so
nothing committed) for work that has not succeeded. Any other failure belongs to a
record: the batch is split in halves until the failing records are found, each gets
the handler's verdict for it (the detector records the decision ``error``) and a dead
letter with the reason and its origin, and the rest of the batch is processed as
usual. No record can wedge the loop. A stop request (SIGTERM) ends a retry and the
loop; an unfinished batch is not committed and is delivered again, which the handlers
make harmless (idempotent per message).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from fraud_common import metrics, tracing
from fraud_common.failures import describe, is_dependency_failure
from fraud_common.kafka.producer import AckingProducer

log = logging.getLogger(__name__)

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class InvalidMessage(Exception):
    """A message that can never be processed (not JSON, wrong schema): it goes to the DLQ."""


class Record(NamedTuple, Generic[T]):
    """A decoded message with where it came from (a named tuple: one is built per message,
    and a frozen dataclass costs three times as much to build)."""

    value: T
    topic: str
    partition: int
    offset: int
    key: str | None
    headers: dict[str, str]
    raw: bytes = b""


@dataclass(frozen=True)
class Rejected:
    """A message set aside: undecodable (``value`` is None) or failing in the handler."""

    reason: str
    topic: str
    partition: int
    offset: int
    key: bytes | None
    raw: bytes
    headers: dict[str, str]
    value: Any = None


class BatchHandler(Protocol[T]):
    """What a service plugs into the loop."""

    def decode(self, message: Message) -> T:
        """Parse and validate one message; raise `InvalidMessage` to dead-letter it."""
        ...

    def handle(self, records: Sequence[Record[T]]) -> None:
        """Process a batch completely (state, produced messages acknowledged) or raise.

        A dependency failure means "retry the whole batch later"; any other exception
        makes the loop run the batch again in halves to find the failing records. Either
        way the same records run again, so handling must be idempotent per record.
        """
        ...

    def reject(self, rejected: Rejected) -> None:
        """Record the outcome of a message that is set aside (before its dead letter is
        sent); raise only for a dependency failure."""
        ...


@dataclass
class LoopStatus:
    """What the health endpoint reads; written only by the loop thread."""

    state: str = "starting"  # starting | running | failing | stopped | dead
    last_poll: float = field(default_factory=time.monotonic)
    last_error: str | None = None
    processed: int = 0
    dead_lettered: int = 0
    failures: int = 0

    def healthy(self, stall_after: float) -> bool:
        fresh = time.monotonic() - self.last_poll < stall_after
        # "starting" is not healthy: until the loop polls, nothing is being evaluated
        # (a detector is still loading its gazetteer or waiting for the broker).
        return self.state == "running" and fresh

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "secondsSinceLastPoll": round(time.monotonic() - self.last_poll, 3),
            "lastError": self.last_error,
            "processed": self.processed,
            "deadLettered": self.dead_lettered,
            "failures": self.failures,
        }


def dead_letter_headers(rejected: Rejected) -> list[tuple[str, str]]:
    """Headers naming the error and the original topic/partition/offset."""
    return [
        ("dlq-error", rejected.reason[:1000]),
        ("dlq-original-topic", rejected.topic),
        ("dlq-original-partition", str(rejected.partition)),
        ("dlq-original-offset", str(rejected.offset)),
        ("dlq-failed-at", f"{time.time():.3f}"),
    ]


def _origin(message: Message) -> dict[str, Any]:
    """Where a message came from, as `Rejected` takes it."""
    raw = message.value()
    key = message.key()
    return {
        "topic": str(message.topic()),
        "partition": int(message.partition() or 0),
        "offset": int(message.offset() or 0),
        "key": key.encode() if isinstance(key, str) else key,
        "raw": raw.encode() if isinstance(raw, str) else (raw or b""),
        "headers": {str(h[0]): _text(h[1]) or "" for h in (message.headers() or [])},
    }


def _where(fields: dict[str, Any]) -> dict[str, Any]:
    """Log fields that locate a message, and the trace id of its ``traceparent`` header."""
    where = {name: fields[name] for name in ("topic", "partition", "offset")}
    trace = tracing.parse((fields.get("headers") or {}).get(tracing.HEADER))
    if trace is not None:
        where["trace_id"] = trace.trace_id
    return where


def _text(value: bytes | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return value.decode("utf-8", errors="replace")


class LagReporter:
    """``fraud_consumer_lag``: high watermark minus the consumer's position, for each
    partition it holds, every ``interval`` seconds, from what librdkafka already knows
    (``position()`` and the cached watermarks, updated by every fetch): no request to
    the broker, so it runs in the loop thread between batches.

    Tansu reports as high watermark the base offset of a partition's last batch, not
    the offset after its last record, so there the lag reads low by up to that batch's
    size (and a caught-up consumer would read negative: clamped to 0).
    """

    def __init__(self, group: str, interval: float) -> None:
        self._group = group
        self._interval = interval
        self._next = 0.0
        self._reported: set[tuple[str, int]] = set()
        self._last_poll = metrics.CONSUMER_LAST_POLL.labels(group)

    def maybe_report(self, consumer: Consumer) -> None:
        """Called after each poll: the heartbeat always, the lag when it is due."""
        self._last_poll.set(time.time())
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self._interval
        try:
            held = consumer.position(consumer.assignment())
        except KafkaException as exc:
            log.debug("no positions for the lag", extra={"kafka_error": str(exc)})
            return
        seen: set[tuple[str, int]] = set()
        for tp in held:
            if tp.offset < 0:
                continue  # nothing consumed yet: no position
            try:
                _low, high = consumer.get_watermark_offsets(tp, cached=True)
            except KafkaException:
                continue
            if high < 0:
                continue  # no fetch answered yet
            seen.add((tp.topic, tp.partition))
            self._gauge(tp.topic, tp.partition).set(max(0, high - tp.offset))
        for topic, partition in self._reported - seen:
            # Revoked (or no position any more): 0, so that the new owner's value is
            # the largest (multiprocess livemax) and nothing stale stays up.
            self._gauge(topic, partition).set(0)
        self._reported = seen

    def _gauge(self, topic: str, partition: int) -> Any:
        return metrics.CONSUMER_LAG.labels(self._group, topic, str(partition))


class ConsumerLoop(Generic[T]):
    """Runs one consumer in the calling thread until `stop` is called."""

    def __init__(
        self,
        *,
        consumer_config: dict[str, Any],
        topics: list[str],
        handler: BatchHandler[T],
        producer: AckingProducer,
        dlq_topic: Callable[[str], str],
        max_batch: int = 500,
        poll_timeout: float = 0.25,
        backoff_initial: float = 0.2,
        backoff_max: float = 5.0,
        lag_interval: float = 2.0,
    ) -> None:
        self._config = dict(consumer_config)
        self._topics = topics
        self._handler = handler
        self._producer = producer
        self._dlq_topic = dlq_topic
        self._max_batch = max_batch
        self._poll_timeout = poll_timeout
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._stopping = threading.Event()
        self.status = LoopStatus()
        self._lag = LagReporter(str(self._config.get("group.id", "")), lag_interval)

    def stop(self) -> None:
        """Ask the loop to finish the batch in hand (or abandon a retry) and return."""
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def run(self) -> None:
        consumer = Consumer({**self._config, "error_cb": self._on_client_error})
        try:
            consumer.subscribe(self._topics)
            while not self._stopping.is_set():
                messages = self._next_batch(consumer)
                self.status.last_poll = time.monotonic()
                if self.status.state == "starting":
                    self.status.state = "running"
                if messages:
                    self._process(consumer, messages)
                self._lag.maybe_report(consumer)
            self.status.state = "stopped"
        except BaseException:
            self.status.state = "dead"
            raise
        finally:
            try:
                consumer.close()  # commits stored offsets, leaves the group
            except (KafkaException, RuntimeError):
                log.exception("closing the consumer failed")

    def _next_batch(self, consumer: Consumer) -> list[Message]:
        """Wait (up to the poll timeout) for one message, then take what else is already
        fetched without waiting: `consume(n, timeout)` alone would hold a lone message
        until the batch fills or the timeout ends, adding that much latency to each hop."""
        first = consumer.poll(self._poll_timeout)
        if first is None:
            return []
        return [first, *consumer.consume(self._max_batch - 1, 0)]

    def _on_client_error(self, error: KafkaError) -> None:
        # librdkafka reconnects by itself; this only makes the outage visible.
        log.warning("kafka client error", extra={"kafka_error": str(error)})
        if error.code() in (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT):
            self.status.last_error = f"kafka: {error.str()}"

    def _process(self, consumer: Consumer, messages: list[Message]) -> None:
        records: list[Record[T]] = []
        undecodable: list[Rejected] = []
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("consume error", extra={"kafka_error": str(error)})
                continue
            origin = _origin(message)
            try:
                value = self._handler.decode(message)
            except InvalidMessage as exc:
                undecodable.append(Rejected(reason=str(exc), **origin))
                continue
            except Exception as exc:  # a decoder bug or a value no check foresaw
                log.exception("decoding failed", extra=_where(origin))
                undecodable.append(Rejected(reason=f"cannot decode: {describe(exc)}", **origin))
                continue
            records.append(
                Record(
                    value=value,
                    topic=origin["topic"],
                    partition=origin["partition"],
                    offset=origin["offset"],
                    key=_text(origin["key"]),
                    headers=origin["headers"],
                    raw=origin["raw"],
                )
            )
        outcome: list[list[Rejected]] = []
        if not self._retry_until_done(lambda: outcome.append(self._finish(records, undecodable))):
            return  # stopping: nothing stored, the batch is delivered again
        self._store_offsets(consumer, messages)
        rejected = outcome[-1]
        self.status.processed += len(records) + len(undecodable) - len(rejected)
        self.status.dead_lettered += len(rejected)
        for item in rejected:
            metrics.DEAD_LETTERS.labels(self._dlq_topic(item.topic)).inc()

    def _finish(self, records: list[Record[T]], undecodable: list[Rejected]) -> list[Rejected]:
        """Handle the batch, set aside what fails; returns everything set aside."""
        rejected = undecodable + self._handle_isolating(records)
        futures: list[Future[Message]] = []
        for item in rejected:
            log.warning(
                "setting a message aside", extra={"reason": item.reason, **_where(vars(item))}
            )
            try:
                self._handler.reject(item)
            except Exception as exc:
                if is_dependency_failure(exc):
                    raise
                log.exception("recording a rejected message failed", extra=_where(vars(item)))
            futures.append(
                self._producer.send(
                    self._dlq_topic(item.topic),
                    item.raw,
                    key=item.key,
                    headers=dead_letter_headers(item),
                )
            )
        for item, future in zip(rejected, futures, strict=True):
            try:
                future.result()
            except Exception as exc:
                if is_dependency_failure(exc):
                    raise
                # The broker refuses this dead letter for good (e.g. too large): retrying
                # would wedge the loop, so it is logged with its origin and left there.
                log.critical(
                    "dead letter refused; the message stays only at its origin",
                    exc_info=True,
                    extra=_where(vars(item)),
                )
        return rejected

    def _handle_isolating(self, records: list[Record[T]]) -> list[Rejected]:
        """Handle ``records``; on a record failure, bisect to the records that fail.

        Halves keep the batch's order, so one user's records are still handled in
        offset order. A dependency failure propagates: the whole batch is retried.
        """
        if not records:
            return []
        try:
            self._handler.handle(records)
            return []
        except Exception as exc:
            if is_dependency_failure(exc):
                raise
            if len(records) > 1:
                middle = len(records) // 2
                return self._handle_isolating(records[:middle]) + self._handle_isolating(
                    records[middle:]
                )
            record = records[0]
            log.exception("a record cannot be processed", extra=_where(record._asdict()))
            return [
                Rejected(
                    reason=describe(exc),
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                    key=None if record.key is None else record.key.encode(),
                    raw=record.raw,
                    headers=record.headers,
                    value=record.value,
                )
            ]

    def _retry_until_done(self, work: Callable[[], None]) -> bool:
        """Run ``work`` until it succeeds (True) or a stop is requested (False)."""
        delay = self._backoff_initial
        while True:
            try:
                work()
            except Exception as exc:  # dependency failures; see _finish
                self.status.state = "failing"
                self.status.failures += 1
                self.status.last_error = f"{type(exc).__name__}: {exc}"
                log.warning(
                    "batch failed, will retry", exc_info=True, extra={"retry_in_s": round(delay, 2)}
                )
                if self._stopping.wait(delay * random.uniform(0.5, 1.0)):  # noqa: S311
                    return False
                self.status.last_poll = time.monotonic()
                delay = min(delay * 2, self._backoff_max)
                continue
            self.status.state = "running"
            self.status.last_error = None
            return True

    def _store_offsets(self, consumer: Consumer, messages: list[Message]) -> None:
        next_offsets: dict[tuple[str, int], int] = {}
        for message in messages:
            if message.error() is None:
                tp = (str(message.topic()), int(message.partition() or 0))
                next_offsets[tp] = max(next_offsets.get(tp, 0), int(message.offset() or 0) + 1)
        if not next_offsets:
            return
        try:
            consumer.store_offsets(
                offsets=[TopicPartition(t, p, o) for (t, p), o in next_offsets.items()]
            )
        except KafkaException as exc:
            # A partition revoked mid-batch: its new owner gets these messages again.
            log.warning("could not store offsets", extra={"kafka_error": str(exc)})
