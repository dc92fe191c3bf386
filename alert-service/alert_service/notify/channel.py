"""What a delivery channel is: something that delivers one alert or says why it could not."""

from __future__ import annotations

from typing import Protocol

from fraud_common.schemas import Alert


class DeliveryError(Exception):
    """One delivery attempt failed; the message is the reason recorded on the DLQ."""


class Deliverer(Protocol):
    channel: str
    """Stable channel id: names the consumer group, the cooldown and the retry keys."""

    target: str
    """Where it delivers, safe to log (no credentials, no query string)."""

    def deliver(self, alert: Alert, body: str) -> None:
        """Deliver ``alert`` (``body`` is its JSON as stored) or raise `DeliveryError`."""
        ...

    def close(self) -> None: ...
