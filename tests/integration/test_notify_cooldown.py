"""Noise control: one notification per (channel, user, alert type) per cooldown."""

from __future__ import annotations

import pytest
import redis

from alert_service.notify import ChannelWorker
from fraud_common import keys
from tests.support.factories import make_alert
from tests.support.notify_support import (
    SmtpSink,
    WebhookReceiver,
    dlq_producer,
    notify_settings,
    pending,
    publish,
    start_channels,
    wait_until,
)

pytestmark = pytest.mark.integration


def _alerts() -> list:
    return [
        make_alert("u1", "large_transaction_detected"),
        make_alert("u1", "large_transaction_detected"),  # same user and type: quiet
        make_alert("u1", "unusual_location_change_detected"),  # another type
        make_alert("u2", "large_transaction_detected"),  # another user
    ]


def _wait_settled(redis_client: redis.Redis, worker: ChannelWorker, count: int) -> None:
    stats = worker.stats
    wait_until(lambda: stats.delivered + stats.suppressed == count, f"{worker.channel} settled")
    wait_until(lambda: pending(redis_client, worker) == 0, f"{worker.channel} acknowledged")


@pytest.mark.parametrize(("cooldown", "expected"), [(60, [0, 2, 3]), (0, [0, 1, 2, 3])])
def test_cooldown_per_user_and_type_on_every_channel(
    redis_client: redis.Redis,
    redis_url: str,
    kafka_bootstrap: str,
    cooldown: int,
    expected: list[int],
) -> None:
    alerts = _alerts()
    with (
        WebhookReceiver() as receiver,
        SmtpSink() as smtp,
        dlq_producer(kafka_bootstrap) as producer,
    ):
        settings = notify_settings(
            redis_url,
            kafka_bootstrap,
            webhook_urls=[receiver.url],
            smtp_host="127.0.0.1",
            smtp_port=smtp.port,
            email_to=["ops@example.com"],
            alert_cooldown_seconds=cooldown,
        )
        with start_channels(settings, redis_client, producer) as channels:
            publish(redis_client, *alerts)
            for worker in channels.workers:
                _wait_settled(redis_client, worker, 4)

    wanted = sorted(alerts[i].alertId for i in expected)
    assert sorted(r.headers["X-Alert-Id"] for r in receiver.all()) == wanted
    assert sorted(m.message["X-Alert-Id"] for m in smtp.mails) == wanted
    for worker in channels.workers:
        assert worker.stats.suppressed == 4 - len(expected)
    if cooldown:
        ttl = redis_client.ttl(keys.notify_cooldown("email", "u1", "large_transaction_detected"))
        assert 0 < ttl <= cooldown


def test_cooldown_holds_across_workers_of_one_channel(
    redis_client: redis.Redis, redis_url: str, kafka_bootstrap: str
) -> None:
    alerts = [make_alert("u1") for _ in range(12)]
    with WebhookReceiver() as receiver, dlq_producer(kafka_bootstrap) as producer:
        settings = notify_settings(
            redis_url, kafka_bootstrap, webhook_urls=[receiver.url], alert_cooldown_seconds=60
        )
        with (
            start_channels(settings, redis_client, producer) as first,
            start_channels(settings, redis_client, producer) as second,
        ):
            workers = first.workers + second.workers
            for alert in alerts:
                publish(redis_client, alert)
            wait_until(
                lambda: sum(w.stats.delivered + w.stats.suppressed for w in workers) == 12,
                "all settled",
            )
            wait_until(lambda: pending(redis_client, workers[0]) == 0, "all acknowledged")
    # One of them, whichever worker claimed the cooldown first; the other 11 stay quiet.
    (notified,) = [r.headers["X-Alert-Id"] for r in receiver.all()]
    assert notified in {a.alertId for a in alerts}
    assert sum(w.stats.suppressed for w in workers) == 11
