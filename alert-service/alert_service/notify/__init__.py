"""Notification channels (webhooks, email) fed from the alerts stream.

Placeholder until the channels land: `build_notifiers` returns the background threads
the app factory registers.
"""

from __future__ import annotations

import redis

from alert_service.settings import AlertServiceSettings
from fraud_common.background import BackgroundThread
from fraud_common.kafka.producer import AckingProducer


def build_notifiers(
    settings: AlertServiceSettings, redis_client: redis.Redis, producer: AckingProducer
) -> list[BackgroundThread]:
    """One background thread per channel (per webhook URL, one for email)."""
    return []
