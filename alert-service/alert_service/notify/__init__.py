"""Notification channels (webhooks, email) fed from the alerts stream.

Every new alert the store keeps is also an entry of the Redis stream
``fraud_common.keys.ALERTS_STREAM``. Each channel (one per webhook URL, one for email)
reads it through its own consumer group in its own thread, so a slow or dead receiver
delays nothing but its own channel, and an entry stays pending until its delivery is
settled: delivered, suppressed by the cooldown, or parked on the alerts DLQ after the
last retry (see `worker` and `queue`). Receivers check the ``X-Signature`` header with
`verify_signature`; docs/webhooks.md describes the scheme and the retry policy.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from dataclasses import replace

import redis

from alert_service.notify.channel import Deliverer
from alert_service.notify.cooldown import Cooldown
from alert_service.notify.dead_letter import DeadLetters
from alert_service.notify.mail import EmailSender
from alert_service.notify.queue import ChannelQueue
from alert_service.notify.retry import RetryPolicy
from alert_service.notify.signing import signature_header, verify_signature
from alert_service.notify.webhook import WebhookSender
from alert_service.notify.worker import ChannelWorker, Tuning
from alert_service.settings import AlertServiceSettings
from fraud_common import keys
from fraud_common.background import BackgroundThread
from fraud_common.kafka.producer import AckingProducer

__all__ = [
    "ChannelWorker",
    "Tuning",
    "build_channel_workers",
    "build_notifiers",
    "signature_header",
    "verify_signature",
]


def build_notifiers(
    settings: AlertServiceSettings, redis_client: redis.Redis, producer: AckingProducer
) -> list[BackgroundThread]:
    """One background thread per channel (per webhook URL, one for email)."""
    return [
        BackgroundThread(f"notify-{worker.channel}", worker)
        for worker in build_channel_workers(settings, redis_client, producer)
    ]


def build_channel_workers(
    settings: AlertServiceSettings,
    redis_client: redis.Redis,
    producer: AckingProducer,
    *,
    tuning: Tuning | None = None,
    stream: str = keys.ALERTS_STREAM,
) -> list[ChannelWorker]:
    """The workers behind `build_notifiers` (not started), with adjustable timings.

    ``redis_client`` must decode responses; its socket timeout bounds the blocking reads.
    """
    if not redis_client.get_connection_kwargs().get("decode_responses"):
        raise ValueError("the notification channels need a Redis client with decode_responses")
    tuning = _fit_to_client(tuning or Tuning(), redis_client)
    senders: list[tuple[Deliverer, float]] = []
    for url, secret in settings.webhook_targets():  # each URL with its own secret
        timeout = settings.webhook_timeout_seconds
        senders.append((WebhookSender(url, secret, timeout=timeout), timeout))
    if settings.smtp_host and settings.email_to:
        password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        email = EmailSender(
            settings.smtp_host,
            settings.smtp_port,
            sender=settings.email_from,
            recipients=settings.email_to,
            timeout=settings.smtp_timeout_seconds,
            starttls=settings.smtp_starttls,
            username=settings.smtp_username,
            password=password,
        )
        # An SMTP session is several round trips, each bounded by the timeout.
        senders.append((email, settings.smtp_timeout_seconds * 4))
    policy = RetryPolicy(
        max_attempts=settings.webhook_max_attempts,
        initial_delay=settings.webhook_backoff_initial_seconds,
        max_delay=settings.webhook_backoff_max_seconds,
    )
    cooldown = Cooldown(redis_client, settings.alert_cooldown_seconds)
    dead_letters = DeadLetters(producer, settings.alerts_dlq)
    consumer = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    stopping = threading.Event()  # one stop ends every channel of this process
    return [
        ChannelWorker(
            sender,
            ChannelQueue(redis_client, stream, sender.channel, consumer),
            cooldown=cooldown,
            policy=policy,
            dead_letters=dead_letters,
            tuning=replace(
                tuning, claim_idle_seconds=max(tuning.claim_idle_seconds, 3 * longest_attempt)
            ),
            stopping=stopping,
        )
        for sender, longest_attempt in senders
    ]


def _fit_to_client(tuning: Tuning, client: redis.Redis) -> Tuning:
    """A blocking read must end before the client's socket timeout fires."""
    socket_timeout = client.get_connection_kwargs().get("socket_timeout")
    if socket_timeout:
        return replace(tuning, block_seconds=min(tuning.block_seconds, socket_timeout / 2))
    return tuning
