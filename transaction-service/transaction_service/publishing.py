"""Accepting transactions: store the records, publish, wait for the broker's acknowledgement.

A transaction counts as accepted only once the broker has acknowledged it (acks=all,
idempotent producer). The record is stored first (one Redis round trip, pipelined for a
batch) so that a 201 is always readable; if publishing fails or times out, the records
of the unpublished transactions are deleted again and the caller answers 503.

The same pipeline adds each transaction to the pending index (`keys.pending`, scored by
acceptance time), from which the detector's reconciler re-drives transactions still
undecided after a while, whatever lost them. With ``REDIS_DURABILITY`` on, the pipeline
ends with the durability confirmation (`fraud_common.durability`): nothing is published
before the records are on disk, so a 201 never names a record a host crash can lose.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import Future, wait
from dataclasses import dataclass

import redis
from confluent_kafka import Message

from fraud_common import keys
from fraud_common.durability import RedisDurability
from fraud_common.kafka.headers import transaction_headers
from fraud_common.kafka.producer import AckingProducer, DeliveryFailed, Headers
from fraud_common.schemas import Transaction

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecordWrite:
    """The record of one accepted transaction and its pending-index entry."""

    record_key: str
    payload: str
    ttl_seconds: int
    pending_key: str
    transaction_id: str
    score: int


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


def message_headers(transaction: Transaction, traceparent: str | None = None) -> Headers:
    """Headers of a published transaction (`fraud_common.kafka.headers`, shared with the
    detector's reconciler, which republishes stored records)."""
    return transaction_headers(transaction.transactionId, traceparent)


def accepted_at_ms(transaction: Transaction) -> int:
    """The pending-index score of a transaction: when it was received, in epoch ms."""
    return int(transaction.receivedAt.timestamp() * 1000)


class Publisher:
    def __init__(
        self,
        client: redis.Redis,
        producer: AckingProducer,
        *,
        topic: str,
        record_ttl_seconds: int,
        publish_timeout_seconds: float,
        durability: RedisDurability | None = None,
    ) -> None:
        self._redis = client
        self._durability = durability or RedisDurability()
        self._producer = producer
        self._topic = topic
        self._ttl = record_ttl_seconds
        self._timeout = publish_timeout_seconds

    @property
    def records_foldable(self) -> bool:
        """Whether the records may be written by the Idempotency-Key's claim script
        (`IdempotencyStore.claim` with ``records``): on one Redis without a durability
        confirmation. On a cluster the keys are in different slots; with
        ``REDIS_DURABILITY`` the records' pipeline must end with the confirmation."""
        return not self._durability.enabled and not isinstance(self._redis, redis.RedisCluster)

    def records(
        self, transactions: Sequence[Transaction], payloads: Sequence[str]
    ) -> list[RecordWrite]:
        """What storing ``transactions`` writes: each record and its pending-index entry."""
        return [
            RecordWrite(
                keys.transaction(t.transactionId),
                payload,
                self._ttl,
                keys.pending(t.transactionId),
                t.transactionId,
                accepted_at_ms(t),
            )
            for t, payload in zip(transactions, payloads, strict=True)
        ]

    def accept(
        self,
        transactions: Sequence[Transaction],
        payloads: Sequence[str],
        *,
        traceparent: str | None = None,
        stored: bool = False,
    ) -> None:
        """Store and publish; returns once every message is acknowledged.

        ``payloads`` are the transactions' JSON (`Transaction.to_json`), computed once by
        the caller; ``traceparent`` goes into every message's headers; ``stored``: the
        records are already written (by the claim script, see `records_foldable`).
        Raises `StorageUnavailable` or `PublishFailed`.
        """
        if not stored:
            self._store(transactions, payloads)

        futures = [
            self._send(t, p, traceparent) for t, p in zip(transactions, payloads, strict=True)
        ]
        wait(futures, timeout=self._timeout)
        failed = [i for i, f in enumerate(futures) if not f.done() or f.exception() is not None]
        if failed:
            first = futures[failed[0]]
            reason = first.exception() if first.done() else "no acknowledgement in time"
            log.warning(
                "transactions not acknowledged by the broker",
                extra={"failed": len(failed), "total": len(futures), "reason": str(reason)},
            )
            self._forget([transactions[i] for i in failed])
            raise PublishFailed(failed, len(futures))

    def _store(self, transactions: Sequence[Transaction], payloads: Sequence[str]) -> None:
        try:
            pipe = self._redis.pipeline(transaction=False)
            for write in self.records(transactions, payloads):
                pipe.set(write.record_key, write.payload, ex=write.ttl_seconds)
                pipe.zadd(write.pending_key, {write.transaction_id: write.score})
            self._durability.execute(pipe)
        except redis.RedisError as exc:
            log.warning("could not store transactions", exc_info=True)
            self._forget(list(transactions))
            raise StorageUnavailable(str(exc)) from exc

    def _send(
        self, transaction: Transaction, payload: str, traceparent: str | None
    ) -> Future[Message]:
        try:
            return self._producer.send(
                self._topic,
                payload,
                key=transaction.userId,
                headers=message_headers(transaction, traceparent),
            )
        except DeliveryFailed as exc:
            failed: Future[Message] = Future()
            failed.set_exception(exc)
            return failed

    def _forget(self, transactions: list[Transaction]) -> None:
        """Delete the records and pending-index entries of transactions that were not
        accepted (best effort; one key per command, so it holds on a cluster too)."""
        try:
            pipe = self._redis.pipeline(transaction=False)
            for transaction in transactions:
                tid = transaction.transactionId
                pipe.delete(keys.transaction(tid))
                pipe.zrem(keys.pending(tid), tid)
            pipe.execute()
        except redis.RedisError:
            log.warning(
                "could not delete the records of unaccepted transactions",
                exc_info=True,
                extra={"count": len(transactions)},
            )
