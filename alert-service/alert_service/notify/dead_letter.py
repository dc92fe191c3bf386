"""Parking an alert a channel gave up on: on the alerts DLQ topic, with the reason."""

from __future__ import annotations

from concurrent.futures import TimeoutError as FutureTimeout

from fraud_common.kafka.producer import AckingProducer, DeliveryFailed


class DeadLetterUnavailable(Exception):
    """The broker did not acknowledge the dead letter; the alert must stay pending."""


class DeadLetters:
    def __init__(self, producer: AckingProducer, topic: str, *, timeout: float = 10.0) -> None:
        self._producer = producer
        self.topic = topic
        self._timeout = timeout

    def park(
        self,
        body: str,
        *,
        key: str | None,
        alert_id: str,
        channel: str,
        target: str,
        attempts: int,
        error: str,
    ) -> None:
        """Publish and wait for the broker's acknowledgement, or raise
        `DeadLetterUnavailable`."""
        headers = [
            ("dlq-error", error),
            ("dlq-channel", channel),
            ("dlq-target", target),
            ("dlq-attempts", str(attempts)),
            ("dlq-alert-id", alert_id),
        ]
        try:
            self._producer.send(self.topic, body, key=key, headers=headers).result(self._timeout)
        except (DeliveryFailed, FutureTimeout) as exc:
            raise DeadLetterUnavailable(f"{type(exc).__name__}: {exc}") from exc
