"""Alerts in Redis: stored once per alertId, listed newest first, streamed in store order.

Each new alert is, in one atomic script call (``store_alert.lua``): its record under
`keys.alert` (with the id of its stream entry, so a reconnecting subscriber can find its
place), its id in the overall and per-user recent lists (bounded), an entry on
`keys.ALERTS_STREAM` (what the live stream and the notification channels read), and one
more in the alerts-per-second counter. A batch is one pipeline: one round trip.
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
        self._script = client.register_script(_SCRIPT)

    def store(self, alerts: Sequence[Alert]) -> list[Stored]:
        """Store a batch in one round trip; safe to repeat (already stored alerts are left
        as they are). Raises `redis.RedisError` when Redis is away: nothing is lost, the
        caller retries the batch."""
        if not alerts:
            return []
        b = self._bounds
        stats_key = keys.stats_alerts(int(self._clock()))
        pipe = self._redis.pipeline(transaction=False)
        for alert in alerts:
            user = alert.transaction.userId
            self._script(
                keys=[
                    keys.alert(alert.alertId),
                    keys.ALERTS_RECENT,
                    keys.alerts_by_user(user),
                    keys.ALERTS_STREAM,
                    stats_key,
                ],
                args=[
                    alert.alertId,
                    alert.to_json(),
                    user,
                    b.ttl_seconds,
                    b.recent_max,
                    b.user_max,
                    b.stream_max_len,
                    STATS_TTL_SECONDS,
                ],
                client=pipe,
            )
        results = pipe.execute()
        return [
            Stored(alert=alert, new=int(created) == 1, stream_id=str(stream_id))
            for alert, (created, stream_id) in zip(alerts, results, strict=True)
        ]

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
