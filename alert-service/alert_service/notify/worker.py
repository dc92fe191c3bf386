"""The loop of one channel worker: read, deliver, retry later or park, acknowledge.

Each iteration takes, in this order: the channel's retries that are due, the entries
abandoned by a dead worker (every ``sweep_interval_seconds``), then new alerts (a
blocking read bounded by ``block_seconds`` and by the next due retry). Every entry is
settled exactly one way: delivered, suppressed by the cooldown, scheduled for another
attempt, or parked on the DLQ; only a settled entry is acknowledged. When Redis is away
the loop logs, waits with capped backoff and goes on by itself.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import redis
from pydantic import ValidationError

from alert_service.notify.channel import Deliverer, DeliveryError
from alert_service.notify.cooldown import Cooldown
from alert_service.notify.dead_letter import DeadLetters, DeadLetterUnavailable
from alert_service.notify.queue import ChannelQueue, Entry
from alert_service.notify.retry import RetryPolicy
from fraud_common import metrics, tracing
from fraud_common.schemas import Alert

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Tuning:
    """Loop timings; the defaults suit production, tests shorten them."""

    batch_size: int = 10
    block_seconds: float = 1.0
    claim_idle_seconds: float = 60.0
    """An entry idle this long in another worker's hands is taken over: keep it well
    above the longest delivery attempt (the loop touches entries it holds longer)."""
    sweep_interval_seconds: float = 10.0
    redis_backoff_initial: float = 0.2
    redis_backoff_max: float = 5.0


@dataclass
class ChannelStats:
    """Counters of this worker (written by its thread only)."""

    state: str = "starting"  # starting | running | failing | stopped
    delivered: int = 0
    failed_attempts: int = 0
    dead_lettered: int = 0
    suppressed: int = 0
    last_error: str | None = None


def _now_ms() -> int:
    return int(time.time() * 1000)


class ChannelWorker:
    """``run()`` loops until ``stop()``; one per channel in each process."""

    def __init__(
        self,
        deliverer: Deliverer,
        queue: ChannelQueue,
        *,
        cooldown: Cooldown,
        policy: RetryPolicy,
        dead_letters: DeadLetters,
        tuning: Tuning = Tuning(),
        stopping: threading.Event | None = None,
    ) -> None:
        """``stopping`` may be shared by the channels of one process: the gunicorn hook
        stops background loops one after the other, and a shared flag lets all channels
        wind down at once instead of each waiting for the previous one's last attempt."""
        self.deliverer = deliverer
        self.queue = queue
        self._cooldown = cooldown
        self._policy = policy
        self._dead_letters = dead_letters
        self._tuning = tuning
        self._stopping = stopping or threading.Event()
        self.ready = threading.Event()
        """Set once the consumer group exists: alerts stored from then on are delivered."""
        self.stats = ChannelStats()
        self._group_ready = False
        self._next_sweep = 0.0

    @property
    def channel(self) -> str:
        return self.deliverer.channel

    def stop(self) -> None:
        self._stopping.set()

    def run(self) -> None:
        delay = self._tuning.redis_backoff_initial
        try:
            while not self._stopping.is_set():
                try:
                    self._step()
                except redis.RedisError as exc:
                    if "NOGROUP" in str(exc):
                        self._group_ready = False  # Redis lost its data: create it again
                    self.stats.state = "failing"
                    self.stats.last_error = f"redis: {type(exc).__name__}: {exc}"
                    log.warning(
                        "notification channel cannot use Redis, will retry",
                        exc_info=True,
                        extra={**self._where(), "retry_in_s": round(delay, 2)},
                    )
                    self._stopping.wait(delay)
                    delay = min(delay * 2, self._tuning.redis_backoff_max)
                    continue
                delay = self._tuning.redis_backoff_initial
                self.stats.state = "running"
        finally:
            self._shutdown()

    def _where(self) -> dict[str, Any]:
        return {"channel": self.channel, "target": self.deliverer.target}

    def _step(self) -> None:
        if not self._group_ready:
            if self.queue.ensure_group():
                log.info("created notification consumer group", extra=self._where())
            self._group_ready = True
            self.ready.set()
        due, gone = self.queue.pop_due(_now_ms(), self._tuning.batch_size)
        for entry_id in gone:
            log.error(
                "alert left the stream before its retry, not notified",
                extra={**self._where(), "entryId": entry_id},
            )
        self._process(due)
        if time.monotonic() >= self._next_sweep:
            self._next_sweep = time.monotonic() + self._tuning.sweep_interval_seconds
            claim_idle_ms = int(self._tuning.claim_idle_seconds * 1000)
            self._process(self.queue.claim_orphans(claim_idle_ms, self._tuning.batch_size))
        if not self._stopping.is_set():
            self._process(self.queue.read_new(self._tuning.batch_size, self._block_ms()))

    def _block_ms(self) -> int | None:
        """How long the read may wait: bounded by the next due retry and the next sweep."""
        wait = min(self._tuning.block_seconds, self._next_sweep - time.monotonic())
        next_due = self.queue.next_due_ms()
        if next_due is not None:
            wait = min(wait, (next_due - _now_ms()) / 1000)
        if wait < 0.001:
            return None  # something is due already: do not wait at all
        return max(1, int(wait * 1000))

    def _process(self, entries: list[Entry]) -> None:
        held_since = time.monotonic()
        for index, entry in enumerate(entries):
            if self._stopping.is_set():
                self.queue.release([e.id for e in entries[index:]], _now_ms())
                return
            if time.monotonic() - held_since > self._tuning.claim_idle_seconds / 3:
                self.queue.touch([e.id for e in entries[index:]])
                held_since = time.monotonic()
            self._settle(entry)

    def _settle(self, entry: Entry) -> None:
        body = entry.fields.get("alert", "")
        try:
            alert = Alert.model_validate_json(body)
        except ValidationError as exc:
            reason = f"invalid alert: {exc.error_count()} problem(s): {exc.errors()[0]['msg']}"
            self._park(entry, body, None, entry.fields.get("alertId", ""), 0, reason)
            return
        if self._policy.exhausted(entry.failed_attempts):  # the DLQ was away last time
            self._park(entry, body, alert, alert.alertId, entry.failed_attempts, entry.last_error)
            return
        context = {
            **self._where(),
            "alertId": alert.alertId,
            "alertType": alert.alertType,
            "userId": alert.transaction.userId,
            "trace_id": alert.traceId,
        }
        if entry.failed_attempts == 0 and not self._cooldown.claim(
            self.channel, alert.transaction.userId, alert.alertType, alert.alertId
        ):
            self.queue.ack(entry.id)
            self.stats.suppressed += 1
            self._count("suppressed")
            log.debug("alert not re-notified (cooldown)", extra=context)
            return
        attempt = entry.failed_attempts + 1
        try:
            with tracing.trace_context(alert.traceId):  # the channel's own lines too
                self.deliverer.deliver(alert, body)
        except DeliveryError as exc:
            error = str(exc)
        except Exception as exc:  # one alert's failure (a bug included), never the channel's end
            log.exception("delivery raised unexpectedly", extra=context)
            error = f"{type(exc).__name__}: {exc}"
        else:
            self.queue.ack(entry.id)
            self.stats.delivered += 1
            self._count("delivered")
            log.info("alert notified", extra={**context, "attempt": attempt})
            return
        self.stats.failed_attempts += 1
        self._count("failed")
        self.stats.last_error = error
        if self._policy.exhausted(attempt):
            self._park(entry, body, alert, alert.alertId, attempt, error)
            return
        delay = self._policy.delay(attempt)
        self.queue.schedule(entry.id, _now_ms() + int(delay * 1000), attempt, error)
        log.warning(
            "alert delivery failed, will retry",
            extra={**context, "attempt": attempt, "error": error, "retry_in_s": round(delay, 3)},
        )

    def _park(
        self,
        entry: Entry,
        body: str,
        alert: Alert | None,
        alert_id: str,
        attempts: int,
        error: str,
    ) -> None:
        context = {**self._where(), "alertId": alert_id, "attempts": attempts, "error": error}
        try:
            self._dead_letters.park(
                body,
                key=alert.transaction.userId if alert else None,
                alert_id=alert_id,
                channel=self.channel,
                target=self.deliverer.target,
                attempts=attempts,
                error=error,
            )
        except DeadLetterUnavailable:
            log.error(
                "could not park alert on the DLQ, will try again", exc_info=True, extra=context
            )
            due = _now_ms() + int(self._policy.max_delay * 1000)
            self.queue.schedule(entry.id, due, max(attempts, self._policy.max_attempts), error)
            return
        self.queue.ack(entry.id)
        self.stats.dead_lettered += 1
        self._count("dead_lettered")
        log.error("gave up notifying alert, parked on the DLQ", extra=context)

    def _count(self, result: str) -> None:
        metrics.NOTIFICATIONS.labels(self.channel, result).inc()

    def _shutdown(self) -> None:
        self.stats.state = "stopped"
        try:
            if self._group_ready and self.queue.pending_of_consumer() == 0:
                self.queue.forget_consumer()
        except redis.RedisError:
            log.warning("could not leave the consumer group", exc_info=True, extra=self._where())
        self.deliverer.close()
