"""Alerts in Redis: stored once per alertId, listed newest first, streamed in store order.

A stored alert is: its record under `keys.alert` (with the id of its stream entry, so a
reconnecting subscriber can find its place), one entry on `keys.ALERTS_STREAM` (what the
live stream and the notification channels read), its id in the overall and per-user
recent lists (bounded) and one more in the alerts-per-second counter.

Those keys are in different Redis Cluster slots, so no single script may write them all
(CROSSSLOT). A batch is stored in steps, each a pipeline of single-slot commands (one
round trip; on a cluster, one per node), each safe to repeat after a crash between them:

1. read the alerts' records and check the types of the keys to be written (a key of the
   wrong type fails the whole batch before anything is written, as ``WRONGTYPE``);
2. for alerts without a record, append to the stream *once* (``store_alert.lua``, in the
   stream's slot): the script keeps an index alertId -> stream id beside the stream (same
   hash tag) and answers the indexed id instead of appending again, so a retry after a
   crash before step 3, a second process storing the same alert, or the same alert twice
   in a batch still gives one entry. The index is bounded like the stream
   (`StoreBounds.stream_max_len`): it only has to outlive the gap between steps 2 and 3,
   since an alert with a record never reaches step 2;
3. the record (``SET NX``: the one that sets it makes the alert "new") and the recent
   lists (``ZADD`` of the same member and score: idempotent, repeated for a redelivery so
   a crash in the middle of this step is repaired);
4. the per-second counter, by the number of new alerts (a crash just before this step
   loses those counts: the stats are a dashboard's, not a ledger).

The recent lists are scored by store time in ms with the stream sequence as the fraction
(seq / 4096, exact in a double until 2039), so alerts stored in the same millisecond keep
their store order; the score comes from the stream id, so a repeat gives the same one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import redis

from fraud_common import keys
from fraud_common.schemas import Alert

STATS_TTL_SECONDS = 3600

_SCRIPT = resources.files("alert_service").joinpath("store_alert.lua").read_text("utf-8")

_TYPES = {"zset", "none"}


@dataclass(frozen=True)
class StoreBounds:
    recent_max: int = 10000
    user_max: int = 1000
    ttl_seconds: int = 30 * 24 * 3600
    stream_max_len: int = 100000


@dataclass(frozen=True)
class Stored:
    """Outcome of storing one alert: ``new`` is False for a redelivery."""

    alert: Alert
    new: bool
    stream_id: str


class AlertStore:
    def __init__(
        self,
        client: redis.Redis,
        bounds: StoreBounds | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = client
        self._bounds = bounds or StoreBounds()
        self._clock = clock
        self._append = client.register_script(_SCRIPT)

    def store(self, alerts: Sequence[Alert]) -> list[Stored]:
        """Store a batch (see the module's steps); safe to repeat (already stored alerts
        are left as they are). Raises `redis.RedisError` when Redis is away: the caller
        retries the batch, and the retry finishes what was started."""
        if not alerts:
            return []
        known = self._check_and_read(alerts)
        stream_ids = self._append_missing(alerts, known)
        new = self._write_records_and_lists(alerts, known, stream_ids)
        added = sum(new)
        if added:
            pipe = self._redis.pipeline(transaction=False)
            stats_key = keys.stats_alerts(int(self._clock()))
            pipe.incrby(stats_key, added)
            pipe.expire(stats_key, STATS_TTL_SECONDS)
            pipe.execute()
        return [
            Stored(alert=alert, new=is_new, stream_id=stream_id)
            for alert, is_new, stream_id in zip(alerts, new, stream_ids, strict=True)
        ]

    def _check_and_read(self, alerts: Sequence[Alert]) -> list[str | None]:
        """Step 1: the stream id of each alert already recorded (None: not yet), after
        checking that the lists to be written are sorted sets (or absent)."""
        users = dict.fromkeys(keys.alerts_by_user(a.transaction.userId) for a in alerts)
        lists = [keys.ALERTS_RECENT, *users]
        pipe = self._redis.pipeline(transaction=False)
        for key in lists:
            pipe.type(key)
        for alert in alerts:
            pipe.get(keys.alert(alert.alertId))
        replies = pipe.execute()
        for key, kind in zip(lists, replies, strict=False):
            if kind not in _TYPES:
                raise redis.ResponseError(f"WRONGTYPE {key} holds a {kind}, not a zset")
        records = replies[len(lists) :]
        return [None if raw is None else str(json.loads(raw)["streamId"]) for raw in records]

    def _append_missing(self, alerts: Sequence[Alert], known: list[str | None]) -> list[str]:
        """Step 2: the stream id of every alert, appending those not recorded yet."""
        missing = [i for i, stream_id in enumerate(known) if stream_id is None]
        if not missing:
            return [str(s) for s in known]
        pipe = self._redis.pipeline(transaction=False)
        for i in missing:
            alert = alerts[i]
            self._append(
                keys=[keys.ALERTS_STREAM, keys.ALERTS_APPENDED_INDEX, keys.ALERTS_APPENDED_ORDER],
                args=[
                    alert.alertId,
                    alert.to_json(),
                    alert.transaction.userId,
                    self._bounds.stream_max_len,
                    self._bounds.stream_max_len,
                ],
                client=pipe,
            )
        appended = pipe.execute()
        stream_ids = list(known)
        for i, (_, stream_id) in zip(missing, appended, strict=True):
            stream_ids[i] = str(stream_id)
        return [str(s) for s in stream_ids]

    def _write_records_and_lists(
        self, alerts: Sequence[Alert], known: list[str | None], stream_ids: list[str]
    ) -> list[bool]:
        """Step 3: the records of the alerts that had none (``SET NX``: True for the one
        that set it) and the recent lists of all of them."""
        b = self._bounds
        pipe = self._redis.pipeline(transaction=False)
        setting: list[int] = []  # positions in ``alerts`` whose SET NX is in the pipeline
        for i, (alert, stream_id) in enumerate(zip(alerts, stream_ids, strict=True)):
            if known[i] is None:
                setting.append(i)
                record = f'{{"streamId":"{stream_id}","alert":{alert.to_json()}}}'
                pipe.set(keys.alert(alert.alertId), record, nx=True, ex=b.ttl_seconds)
            score = _score(stream_id)
            user_key = keys.alerts_by_user(alert.transaction.userId)
            pipe.zadd(keys.ALERTS_RECENT, {alert.alertId: score})
            pipe.zremrangebyrank(keys.ALERTS_RECENT, 0, -(b.recent_max + 1))
            pipe.zadd(user_key, {alert.alertId: score})
            pipe.zremrangebyrank(user_key, 0, -(b.user_max + 1))
            pipe.expire(user_key, b.ttl_seconds)
        replies = iter(pipe.execute())
        new = [False] * len(alerts)
        for i in range(len(alerts)):
            if known[i] is None:
                new[i] = bool(next(replies))
            for _ in range(5):
                next(replies)
        return new

    def recent(self, *, user_id: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Up to ``limit`` alerts, newest first; of one user when ``user_id`` is given."""
        index = keys.alerts_by_user(user_id) if user_id else keys.ALERTS_RECENT
        ids = self._redis.zrevrange(index, 0, limit - 1)
        if not ids:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for alert_id in ids:
            pipe.get(keys.alert(str(alert_id)))
        records = pipe.execute()
        # A record past its TTL may still be listed until the list trims it: skip it.
        return [json.loads(r)["alert"] for r in records if r is not None]

    def get(self, alert_id: str) -> dict[str, Any] | None:
        record = self._record(alert_id)
        return None if record is None else dict(record["alert"])

    def stream_id_of(self, alert_id: str) -> str | None:
        """Id of the stream entry written when the alert was stored (None if unknown)."""
        record = self._record(alert_id)
        return None if record is None else str(record["streamId"])

    def _record(self, alert_id: str) -> dict[str, Any] | None:
        raw = self._redis.get(keys.alert(alert_id))
        return None if raw is None else dict(json.loads(raw))


def _score(stream_id: str) -> float:
    """Store time in ms with the stream sequence as the fraction (see the module)."""
    ms, _, seq = stream_id.partition("-")
    return int(ms) + min(int(seq), 4095) / 4096
