"""Accepting transactions: store the records, publish, wait for the broker's acknowledgement.

A transaction counts as accepted only once the broker has acknowledged it (acks=all,
idempotent producer). The record is stored first (one Redis round trip, pipelined for a
batch) so that a 201 is always readable; if publishing fails or times out, the records
of the unpublished transactions are deleted again and the caller answers 503.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import Future, wait

import redis
from confluent_kafka import Message

from fraud_common import keys
from fraud_common.kafka.producer import AckingProducer, DeliveryFailed, Headers
from fraud_common.schemas import Transaction

log = logging.getLogger(__name__)


class StorageUnavailable(Exception):
    """Redis did not take the records; nothing was published."""


class PublishFailed(Exception):
    """Some transactions were not acknowledged by the broker (their records are gone).

    ``failed`` holds their positions. With a timeout the broker may still have persisted
    a message; a retry with the same Idempotency-Key republishes the same transactionId,
    which the detector evaluates once."""

    def __init__(self, failed: list[int], total: int) -> None:
        super().__init__(f"{len(failed)} of {total} transactions not acknowledged")
        self.failed = failed
        self.total = total


def message_headers(transaction: Transaction) -> Headers:
    """Headers of a published transaction (the place to add a trace id)."""
    return [("transaction-id", transaction.transactionId.encode())]


class Publisher:
    def __init__(
        self,
        client: redis.Redis,
        producer: AckingProducer,
        *,
        topic: str,
        record_ttl_seconds: int,
        publish_timeout_seconds: float,
    ) -> None:
        self._redis = client
        self._producer = producer
        self._topic = topic
        self._ttl = record_ttl_seconds
        self._timeout = publish_timeout_seconds

    def accept(self, transactions: Sequence[Transaction], payloads: Sequence[str]) -> None:
        """Store and publish; returns once every message is acknowledged.

        ``payloads`` are the transactions' JSON (`Transaction.to_json`), computed once by
        the caller. Raises `StorageUnavailable` or `PublishFailed`.
        """
        names = [keys.transaction(t.transactionId) for t in transactions]
        try:
            pipe = self._redis.pipeline(transaction=False)
            for name, payload in zip(names, payloads, strict=True):
                pipe.set(name, payload, ex=self._ttl)
            pipe.execute()
        except redis.RedisError as exc:
            log.warning("could not store transactions", exc_info=True)
            self._forget(names)
            raise StorageUnavailable(str(exc)) from exc

        futures = [self._send(t, p) for t, p in zip(transactions, payloads, strict=True)]
        wait(futures, timeout=self._timeout)
        failed = [i for i, f in enumerate(futures) if not f.done() or f.exception() is not None]
        if failed:
            first = futures[failed[0]]
            reason = first.exception() if first.done() else "no acknowledgement in time"
            log.warning(
                "transactions not acknowledged by the broker",
                extra={"failed": len(failed), "total": len(futures), "reason": str(reason)},
            )
            self._forget([names[i] for i in failed])
            raise PublishFailed(failed, len(futures))

    def _send(self, transaction: Transaction, payload: str) -> Future[Message]:
        try:
            return self._producer.send(
                self._topic,
                payload,
                key=transaction.userId,
                headers=message_headers(transaction),
            )
        except DeliveryFailed as exc:
            failed: Future[Message] = Future()
            failed.set_exception(exc)
            return failed

    def _forget(self, names: list[str]) -> None:
        """Delete records of transactions that were not accepted (best effort)."""
        try:
            self._redis.delete(*names)
        except redis.RedisError:
            log.warning(
                "could not delete the records of unaccepted transactions",
                exc_info=True,
                extra={"count": len(names)},
            )
