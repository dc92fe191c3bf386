"""Noise control: one notification per (channel, user, alert type) per cooldown."""

from __future__ import annotations

import redis

from fraud_common import keys


class Cooldown:
    """``claim`` is one ``SET key alertId NX EX seconds GET``: atomic across workers.

    The key holds the id of the alert that opened the cooldown, so that alert itself
    may still be delivered when a worker crashed after claiming it and another worker
    takes it over; any other alert of the same user and type is suppressed until the
    key expires. ``seconds == 0`` switches the cooldown off.
    """

    def __init__(self, client: redis.Redis, seconds: int) -> None:
        self._client = client
        self.seconds = seconds

    def claim(self, channel: str, user_id: str, alert_type: str, alert_id: str) -> bool:
        """True when this alert may be notified on ``channel``."""
        if self.seconds <= 0:
            return True
        key = keys.notify_cooldown(channel, user_id, alert_type)
        previous = self._client.set(key, alert_id, nx=True, ex=self.seconds, get=True)
        return previous is None or previous == alert_id
