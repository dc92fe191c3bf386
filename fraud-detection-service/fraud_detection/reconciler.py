"""The reconciler: accepted transactions that stay undecided are driven through again.

The transaction-service adds every accepted transaction to the pending index
(`keys.pending`: `keys.PENDING_SHARDS` sorted sets scored by acceptance time, in the same
pipeline as the record). Normally the detector decides within a second and the entry only
waits to be cleared. When something lost the work (a decision or window entry gone with
Redis's last second before a host crash, a record stored whose publish never happened,
a message lost by a broker), the entry stays, and this is what notices. Every
``RECONCILE_INTERVAL_SECONDS`` each detector process sweeps the shards:

    for each shard, in a random order, if its lock is free (SET NX PX):
        ids accepted more than RECONCILE_AFTER_SECONDS ago, oldest first, at most
        RECONCILE_BATCH_SIZE
        one pipeline: has each a decision?
        decided      -> removed from the index
        record gone  -> removed, with a warning (expired, or never stored)
        undecided    -> the stored record is published again to ``transactions`` (key
                        userId, the usual headers), its acknowledgement awaited; the entry
                        is re-scored to now, so it is re-driven again only if it is still
                        undecided after another RECONCILE_AFTER_SECONDS
        the lock is left to expire after one interval: a shard is swept about once per
        interval, however many detectors run

A re-driven transaction is evaluated like any redelivery: the state snapshot kept per
transaction makes it judge the same, and alert ids are deterministic, so re-driving one
that was only slow changes nothing. A detector lagging more than RECONCILE_AFTER_SECONDS
behind gets such duplicates: that costs work, never correctness.

The index is cleared only here: with the defaults a sweep handles at most 16 x 1,000
entries per 10 s, i.e. 1,600 accepted transactions a second sustained; beyond that entries
wait longer (raise RECONCILE_BATCH_SIZE). A sweep that meets a Redis or Kafka outage logs
a warning and stops; the next interval tries again. The thread never dies of a sweep.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, wait
from dataclasses import dataclass, field

import redis
from confluent_kafka import Message

from fraud_common import keys
from fraud_common.failures import is_dependency_failure
from fraud_common.kafka.headers import transaction_headers
from fraud_common.kafka.producer import AckingProducer, DeliveryFailed

log = logging.getLogger(__name__)

LOGGED_IDS = 50
"""Most transaction ids one log line lists (the count is always complete)."""

# Hand the lock on only while it is still ours: it then expires one interval later.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""


@dataclass
class SweepResult:
    redriven: list[str] = field(default_factory=list)
    settled: int = 0
    missing: list[str] = field(default_factory=list)
    unacknowledged: int = 0
    skipped_shards: int = 0


class Reconciler:
    """``run`` sweeps every interval until `stop`; `sweep` is one sweep (for tests)."""

    def __init__(
        self,
        client: redis.Redis,
        producer: AckingProducer,
        *,
        topic: str,
        interval_seconds: float,
        after_seconds: float,
        batch_size: int,
        ack_timeout_seconds: float,
        shards: int = keys.PENDING_SHARDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = client
        self._producer = producer
        self._topic = topic
        self._interval = interval_seconds
        self._after = after_seconds
        self._batch = batch_size
        self._ack_timeout = ack_timeout_seconds
        self._shards = shards
        self._clock = clock
        self._release = client.register_script(_RELEASE)
        self._token = uuid.uuid4().hex
        # Held while a shard is swept: longer than the slowest sweep of one shard (the
        # acknowledgements, a few Redis round trips), so it only expires if we died.
        self._lock_ms = int((ack_timeout_seconds + 30) * 1000)
        self._stopping = threading.Event()
        self.redriven_total = 0

    def run(self) -> None:
        while not self._stopping.is_set():
            self.sweep_safely()
            self._stopping.wait(self._interval)

    def stop(self) -> None:
        self._stopping.set()

    def sweep_safely(self) -> SweepResult:
        """One sweep; an outage or a bug is logged, never raised."""
        result = SweepResult()
        try:
            self.sweep(result)
        except Exception as exc:
            if is_dependency_failure(exc):
                log.warning("reconcile sweep failed; the next one retries", exc_info=True)
            else:
                log.exception("reconcile sweep failed")
        finally:
            self._report(result)
        return result

    def sweep(self, result: SweepResult | None = None) -> SweepResult:
        """Sweep every shard whose lock is free; raises on a Redis outage."""
        result = result or SweepResult()
        order = list(range(self._shards))
        random.shuffle(order)  # several detectors start on different shards
        for shard in order:
            if self._stopping.is_set():
                break
            self._sweep_shard(shard, result)
            if result.unacknowledged:
                break  # the broker is away: the next interval tries again
        return result

    def _sweep_shard(self, shard: int, result: SweepResult) -> None:
        lock = keys.pending_lock(shard)
        if not self._redis.set(lock, self._token, nx=True, px=self._lock_ms):
            result.skipped_shards += 1
            return
        try:
            self._reconcile(keys.pending_index(shard), result)
        finally:
            with contextlib.suppress(redis.RedisError):  # else it expires by itself
                self._release(keys=[lock], args=[self._token, int(self._interval * 1000)])

    def _reconcile(self, index: str, result: SweepResult) -> None:
        now_ms = int(self._clock() * 1000)
        cutoff = now_ms - int(self._after * 1000)
        ids = [str(i) for i in self._redis.zrangebyscore(index, "-inf", cutoff, 0, self._batch)]
        if not ids:
            return
        pipe = self._redis.pipeline(transaction=False)
        for transaction_id in ids:
            pipe.exists(keys.decision(transaction_id))
        decided = [t for t, found in zip(ids, pipe.execute(), strict=True) if found]
        settled = set(decided)
        undecided = [t for t in ids if t not in settled]

        records: list[str | None] = []
        if undecided:
            pipe = self._redis.pipeline(transaction=False)
            for transaction_id in undecided:
                pipe.get(keys.transaction(transaction_id))
            records = list(pipe.execute())
        missing = [t for t, r in zip(undecided, records, strict=True) if r is None]
        if decided or missing:
            self._redis.zrem(index, *decided, *missing)
        result.settled += len(decided)
        if missing:
            result.missing.extend(missing)
            log.warning(
                "pending transactions without a record dropped from the index",
                extra={"count": len(missing), "transaction_ids": missing[:LOGGED_IDS]},
            )

        present = [(t, r) for t, r in zip(undecided, records, strict=True) if r is not None]
        if present:
            acknowledged = self._republish(present, result)
            if acknowledged:
                self._redis.zadd(index, dict.fromkeys(acknowledged, now_ms), xx=True)
                result.redriven.extend(acknowledged)
                self.redriven_total += len(acknowledged)

    def _republish(self, records: list[tuple[str, str]], result: SweepResult) -> list[str]:
        """Publish the stored records again; returns the ids the broker acknowledged."""
        futures: list[Future[Message]] = []
        for transaction_id, record in records:
            try:
                futures.append(
                    self._producer.send(
                        self._topic,
                        record,
                        key=_user_id(record),
                        headers=transaction_headers(transaction_id),
                    )
                )
            except DeliveryFailed as exc:
                failed: Future[Message] = Future()
                failed.set_exception(exc)
                futures.append(failed)
        wait(futures, timeout=self._ack_timeout)
        acknowledged = [
            transaction_id
            for (transaction_id, _), future in zip(records, futures, strict=True)
            if future.done() and future.exception() is None
        ]
        unacknowledged = len(records) - len(acknowledged)
        if unacknowledged:
            result.unacknowledged += unacknowledged
            log.warning(
                "re-driven transactions not acknowledged by the broker; the next sweep retries",
                extra={"count": unacknowledged, "total": len(records)},
            )
        return acknowledged

    def _report(self, result: SweepResult) -> None:
        if result.redriven:
            log.info(
                "re-drove %d undecided transactions",
                len(result.redriven),
                extra={
                    "count": len(result.redriven),
                    "transaction_ids": result.redriven[:LOGGED_IDS],
                    "settled": result.settled,
                },
            )


def _user_id(record: str) -> str | None:
    """The message key, as the transaction-service sets it. A record that is not a JSON
    object is republished all the same: the detector sets it aside with its reason."""
    try:
        value = json.loads(record)
    except ValueError:
        return None
    user_id = value.get("userId") if isinstance(value, dict) else None
    return user_id if isinstance(user_id, str) else None
