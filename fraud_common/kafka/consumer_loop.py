"""The at-least-once consumer loop shared by the detector and the alert-service.

    while not stopping:
        batch = consumer.consume(...)
        decode each message; the undecodable go to <topic>.dlq with the reason
        handler.handle(decoded batch)  -- retried with backoff until it succeeds
        store the batch's offsets       -- librdkafka commits stored offsets only

Nothing is stored (so nothing committed) for work that has not succeeded: when Redis or
Kafka is away the loop keeps the batch in hand, reports itself failing, retries with
capped exponential backoff and goes on by itself when the dependency returns. A stop
request (SIGTERM) ends the retry and the loop; the unfinished batch is not committed
and is delivered again, which the handlers make harmless (idempotent per message).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from fraud_common.kafka.producer import AckingProducer

log = logging.getLogger(__name__)

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class InvalidMessage(Exception):
    """A message that can never be processed (not JSON, wrong schema): it goes to the DLQ."""


@dataclass(frozen=True)
class Record(Generic[T]):
    """A decoded message with where it came from."""

    value: T
    topic: str
    partition: int
    offset: int
    key: str | None
    headers: dict[str, str]


class BatchHandler(Protocol[T]):
    """What a service plugs into the loop."""

    def decode(self, message: Message) -> T:
        """Parse and validate one message; raise `InvalidMessage` to dead-letter it."""
        ...

    def handle(self, records: Sequence[Record[T]]) -> None:
        """Process a batch completely (state, produced messages acknowledged) or raise.

        Raising means "retry the whole batch later"; it must therefore be safe to run
        the same records again.
        """
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


def dead_letter_headers(message: Message, reason: str) -> list[tuple[str, str]]:
    """Headers naming the error and the original topic/partition/offset."""
    return [
        ("dlq-error", reason[:1000]),
        ("dlq-original-topic", str(message.topic())),
        ("dlq-original-partition", str(message.partition())),
        ("dlq-original-offset", str(message.offset())),
        ("dlq-failed-at", f"{time.time():.3f}"),
    ]


def _text(value: bytes | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return value.decode("utf-8", errors="replace")


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
        dead: list[tuple[Message, str]] = []
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("consume error", extra={"kafka_error": str(error)})
                continue
            try:
                value = self._handler.decode(message)
            except InvalidMessage as exc:
                dead.append((message, str(exc)))
                continue
            records.append(
                Record(
                    value=value,
                    topic=str(message.topic()),
                    partition=int(message.partition() or 0),
                    offset=int(message.offset() or 0),
                    key=_text(message.key()),
                    headers={str(h[0]): _text(h[1]) or "" for h in (message.headers() or [])},
                )
            )
        if not self._retry_until_done(lambda: self._finish(records, dead)):
            return  # stopping: nothing stored, the batch is delivered again
        self._store_offsets(consumer, messages)
        self.status.processed += len(records)
        self.status.dead_lettered += len(dead)

    def _finish(self, records: list[Record[T]], dead: list[tuple[Message, str]]) -> None:
        futures: list[Future[Message]] = []
        for message, reason in dead:
            log.warning(
                "dead-lettering message",
                extra={
                    "reason": reason,
                    "topic": message.topic(),
                    "partition": message.partition(),
                    "offset": message.offset(),
                },
            )
            futures.append(
                self._producer.send(
                    self._dlq_topic(str(message.topic())),
                    message.value() or b"",
                    key=message.key(),
                    headers=dead_letter_headers(message, reason),
                )
            )
        if records:
            self._handler.handle(records)
        for future in futures:
            future.result()

    def _retry_until_done(self, work: Callable[[], None]) -> bool:
        """Run ``work`` until it succeeds (True) or a stop is requested (False)."""
        delay = self._backoff_initial
        while True:
            try:
                work()
            except Exception as exc:
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
