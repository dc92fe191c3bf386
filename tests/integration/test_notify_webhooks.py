"""Webhook channels against real local HTTP receivers, a real Redis and (for the DLQ) Tansu."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
import redis

from alert_service.notify import ChannelWorker, build_notifiers, verify_signature
from alert_service.notify.webhook import webhook_channel
from fraud_common import keys
from fraud_common.redis_client import connect
from tests.conftest import TopicNames
from tests.support.factories import make_alert
from tests.support.kafka_reading import read_topic
from tests.support.notify_support import (
    FAST_TUNING,
    SECRET,
    Plan,
    SmtpSink,
    WebhookReceiver,
    dlq_producer,
    notify_settings,
    pending,
    publish,
    start_channels,
    wait_until,
)
from tools.local_services import RedisServer

pytestmark = pytest.mark.integration


def _text(value: str | bytes | None) -> str:
    return value.decode() if isinstance(value, bytes) else value or ""


def test_receiver_verifies_the_signature_of_each_alert(
    redis_client: redis.Redis, redis_url: str, kafka_bootstrap: str
) -> None:
    with WebhookReceiver() as receiver, dlq_producer(kafka_bootstrap) as producer:
        settings = notify_settings(redis_url, kafka_bootstrap, webhook_urls=[receiver.url])
        threads = build_notifiers(settings, redis_client, producer)  # the app's own entry point
        assert [t.name for t in threads] == [f"notify-{webhook_channel(receiver.url)}"]
        workers = [t.target for t in threads if isinstance(t.target, ChannelWorker)]
        assert len(workers) == 1
        for thread in threads:
            thread.start()
        try:
            wait_until(lambda: all(w.ready.is_set() for w in workers), "group created")
            alerts = [make_alert("u1"), make_alert("u2", "unusual_location_change_detected")]
            publish(redis_client, *alerts)
            wait_until(lambda: len(receiver.successes()) == 2, "two deliveries")
        finally:
            for thread in threads:
                thread.stop()

    by_id = {r.headers["X-Alert-Id"]: r for r in receiver.all()}
    assert set(by_id) == {a.alertId for a in alerts}
    for alert in alerts:
        request = by_id[alert.alertId]
        assert request.path == "/hooks/alerts?token=abc"
        assert request.headers["Content-Type"] == "application/json"
        assert request.headers["X-Alert-Type"] == alert.alertType
        assert request.body == alert.to_json().encode()
        assert json.loads(request.body)["alertId"] == alert.alertId
        signature = request.headers["X-Signature"]
        assert verify_signature(SECRET, signature, alert.alertId, request.body)
        assert not verify_signature(
            SECRET, signature, alert.alertId, request.body.replace(b"u", b"v", 1)
        )
        assert not verify_signature("another-secret", signature, alert.alertId, request.body)
        other = next(a.alertId for a in alerts if a is not alert)
        assert not verify_signature(SECRET, signature, other, request.body)  # id is signed


def test_each_webhook_signs_with_its_own_secret(
    redis_client: redis.Redis, redis_url: str, kafka_bootstrap: str
) -> None:
    secrets = ("first-receiver-secret", "second-receiver-secret")
    with (
        WebhookReceiver() as first,
        WebhookReceiver() as second,
        dlq_producer(kafka_bootstrap) as producer,
    ):
        settings = notify_settings(
            redis_url,
            kafka_bootstrap,
            webhook_urls=[first.url, second.url],
            webhook_secrets=",".join(secrets),
        )
        with start_channels(settings, redis_client, producer):
            alert = make_alert("u-own-secret")
            publish(redis_client, alert)
            wait_until(
                lambda: len(first.successes()) == len(second.successes()) == 1, "both delivered"
            )
    checks: list[tuple[WebhookReceiver, str, str]] = [
        (first, secrets[0], secrets[1]),
        (second, secrets[1], secrets[0]),
    ]
    for receiver, own, others in checks:
        (request,) = receiver.all()
        signature = request.headers["X-Signature"]
        assert request.headers["X-Alert-Id"] == alert.alertId
        assert verify_signature(own, signature, alert.alertId, request.body)
        assert not verify_signature(others, signature, alert.alertId, request.body)
        assert not verify_signature(SECRET, signature, alert.alertId, request.body)


def test_receiver_failing_twice_gets_the_alert_once_without_holding_back_the_next(
    redis_client: redis.Redis, redis_url: str, kafka_bootstrap: str
) -> None:
    flaky, steady = make_alert("u1"), make_alert("u2")
    plan = Plan(respond=lambda alert, n: 500 if alert == flaky.alertId and n <= 2 else 200)
    with WebhookReceiver(plan) as receiver, dlq_producer(kafka_bootstrap) as producer:
        settings = notify_settings(redis_url, kafka_bootstrap, webhook_urls=[receiver.url])
        with start_channels(settings, redis_client, producer) as channels:
            publish(redis_client, flaky, steady)  # one transaction: read in one batch
            wait_until(lambda: len(receiver.successes()) == 2, "both alerts delivered")
            (worker,) = channels.workers
            wait_until(lambda: pending(redis_client, worker) == 0, "both acknowledged")

    calls = [(r.headers["X-Alert-Id"], r.status) for r in receiver.all()]
    assert calls == [
        (flaky.alertId, 500),
        (steady.alertId, 200),  # not held back by the first one's retries
        (flaky.alertId, 500),
        (flaky.alertId, 200),
    ]
    assert worker.stats.delivered == 2
    assert worker.stats.failed_attempts == 2
    assert worker.stats.dead_lettered == 0
    assert redis_client.zcard(worker.queue.schedule_key) == 0
    assert redis_client.hlen(worker.queue.state_key) == 0


def test_dead_url_ends_on_the_dlq_and_delays_no_other_channel(
    redis_client: redis.Redis, redis_url: str, kafka_bootstrap: str, topics: TopicNames
) -> None:
    alerts = [make_alert("u1"), make_alert("u2", "multiple_rapid_transactions_detected")]
    # The dead receiver answers after the sender's timeout: every attempt costs 1 s.
    with (
        WebhookReceiver(Plan(respond=lambda a, n: 503, delay=1.5)) as dead,
        WebhookReceiver() as alive,
        SmtpSink() as smtp,
        dlq_producer(kafka_bootstrap) as producer,
    ):
        settings = notify_settings(
            redis_url,
            kafka_bootstrap,
            alerts_topic=topics.alerts,
            webhook_urls=[dead.url.replace("/hooks", "/dead"), alive.url],
            webhook_timeout_seconds=1.0,
            smtp_host="127.0.0.1",
            smtp_port=smtp.port,
            email_to=["ops@example.com"],
        )
        with start_channels(settings, redis_client, producer) as channels:
            publish(redis_client, *alerts)
            wait_until(lambda: len(alive.successes()) == 2, "the live URL got both")
            wait_until(lambda: len(smtp.mails) == 2, "both mails arrived")
            (dead_worker,) = [w for w in channels.workers if "/dead" in w.deliverer.target]
            wait_until(lambda: dead_worker.stats.dead_lettered == 2, "both parked", timeout=40)
            wait_until(lambda: pending(redis_client, dead_worker) == 0, "parked ones acknowledged")
        parked = read_topic(kafka_bootstrap, topics.alerts_dlq, expect=2)

    # The live channels had everything before the dead URL's first attempt even timed out.
    first_dead_attempt_ended = dead.all()[0].at + 1.0
    assert max(r.at for r in alive.successes()) < first_dead_attempt_ended
    assert max(m.at for m in smtp.mails) < first_dead_attempt_ended
    assert len(dead.all()) == 6  # 3 attempts for each alert

    assert len(parked) == 2
    by_id = {a.alertId: a for a in alerts}
    for message in parked:
        raw: Any = message.headers() or []
        headers = {str(k): _text(v) for k, v in raw}
        alert = by_id[headers["dlq-alert-id"]]
        assert headers["dlq-error"] == "timeout after 1s"
        assert headers["dlq-channel"] == webhook_channel(dead.url.replace("/hooks", "/dead"))
        assert headers["dlq-attempts"] == "3"
        assert "token" not in headers["dlq-target"]
        assert message.key() == alert.transaction.userId.encode()
        assert message.value() == alert.to_json().encode()


def test_two_workers_of_one_channel_deliver_each_alert_once(
    redis_client: redis.Redis, redis_url: str, kafka_bootstrap: str
) -> None:
    alerts = [make_alert(f"user-{i}") for i in range(30)]
    with WebhookReceiver(Plan(delay=0.01)) as receiver, dlq_producer(kafka_bootstrap) as producer:
        settings = notify_settings(redis_url, kafka_bootstrap, webhook_urls=[receiver.url])
        with (
            start_channels(settings, redis_client, producer) as first,
            start_channels(settings, redis_client, producer) as second,
        ):
            workers = first.workers + second.workers
            assert len({w.queue.consumer for w in workers}) == 2
            assert len({w.queue.group for w in workers}) == 1
            for alert in alerts:
                publish(redis_client, alert)
            wait_until(lambda: len(receiver.successes()) >= 30, "30 deliveries")
            wait_until(lambda: pending(redis_client, workers[0]) == 0, "all acknowledged")

    delivered = [r.headers["X-Alert-Id"] for r in receiver.all()]
    assert sorted(delivered) == sorted(a.alertId for a in alerts)
    print("deliveries per worker:", [w.stats.delivered for w in workers])
    assert sum(w.stats.delivered for w in workers) == 30


def test_an_alert_left_pending_by_a_dead_worker_is_taken_over(
    redis_client: redis.Redis, redis_url: str, kafka_bootstrap: str
) -> None:
    with WebhookReceiver() as receiver, dlq_producer(kafka_bootstrap) as producer:
        settings = notify_settings(
            redis_url, kafka_bootstrap, webhook_urls=[receiver.url], webhook_timeout_seconds=0.3
        )
        group = f"notify:{webhook_channel(receiver.url)}"
        redis_client.xgroup_create(keys.ALERTS_STREAM, group, id="$", mkstream=True)
        alert = make_alert("u1")
        publish(redis_client, alert)
        # A worker that read the entry and died before settling it.
        read: Any = redis_client.xreadgroup(
            group, "crashed-worker", {keys.ALERTS_STREAM: ">"}, count=10
        )
        assert len(read[0][1]) == 1
        with start_channels(settings, redis_client, producer) as channels:
            wait_until(lambda: len(receiver.successes()) == 1, "taken over and delivered")
            wait_until(lambda: pending(redis_client, channels.workers[0]) == 0, "acknowledged")
    assert [r.headers["X-Alert-Id"] for r in receiver.all()] == [alert.alertId]


def test_channel_keeps_going_when_redis_is_briefly_away(kafka_bootstrap: str) -> None:
    with (
        RedisServer(appendonly=True) as server,
        WebhookReceiver() as receiver,
        dlq_producer(kafka_bootstrap) as producer,
    ):
        client = connect(server.url, socket_timeout=1.0)
        settings = notify_settings(server.url, kafka_bootstrap, webhook_urls=[receiver.url])
        with start_channels(settings, client, producer) as channels:
            (worker,) = channels.workers
            publish(client, before := make_alert("u1"))
            wait_until(lambda: len(receiver.successes()) == 1, "delivered before the outage")
            server.stop()
            wait_until(lambda: worker.stats.state == "failing", "the worker noticed")
            server.start()
            publish(client, after := make_alert("u2"))
            wait_until(lambda: len(receiver.successes()) == 2, "delivered after the outage")
            wait_until(lambda: worker.stats.state == "running", "the worker recovered")
        client.close()
    assert [r.headers["X-Alert-Id"] for r in receiver.all()] == [before.alertId, after.alertId]


def test_a_stopping_worker_hands_the_alerts_in_hand_back(
    redis_client: redis.Redis, redis_url: str, kafka_bootstrap: str
) -> None:
    alerts = [make_alert(f"user-{i}") for i in range(5)]
    with WebhookReceiver(Plan(delay=0.3)) as receiver, dlq_producer(kafka_bootstrap) as producer:
        settings = notify_settings(redis_url, kafka_bootstrap, webhook_urls=[receiver.url])
        # Take-over of abandoned entries is out of reach here: what the second worker
        # gets, it gets because the first one handed it back.
        slow_claim = replace(FAST_TUNING, claim_idle_seconds=600)
        first = start_channels(settings, redis_client, producer, slow_claim)
        with first:
            publish(redis_client, *alerts)  # one batch in the first worker's hands
            wait_until(lambda: len(receiver.all()) >= 1, "the first delivery started")
        (stopped,) = first.workers
        assert stopped.stats.delivered < len(alerts)
        with start_channels(settings, redis_client, producer, slow_claim) as second:
            wait_until(lambda: len(receiver.successes()) == len(alerts), "the rest delivered")
            wait_until(lambda: pending(redis_client, second.workers[0]) == 0, "all acknowledged")

    delivered = [r.headers["X-Alert-Id"] for r in receiver.successes()]
    assert sorted(delivered) == sorted(a.alertId for a in alerts)
    assert second.workers[0].stats.delivered == len(alerts) - stopped.stats.delivered


def test_stopping_one_channel_thread_stops_every_channel_of_the_app(
    redis_client: redis.Redis, redis_url: str, kafka_bootstrap: str
) -> None:
    # gunicorn's worker_exit stops loops one after another: the channels share one flag
    # so that they wind down together within the grace period.
    with dlq_producer(kafka_bootstrap) as producer:
        settings = notify_settings(
            redis_url,
            kafka_bootstrap,
            webhook_urls=["http://127.0.0.1:9/a", "http://127.0.0.1:9/b"],
            smtp_host="127.0.0.1",
            email_to=["ops@example.com"],
        )
        threads = build_notifiers(settings, redis_client, producer)
        assert len(threads) == 3
        for thread in threads:
            thread.start()
        threads[0].stop()
        wait_until(lambda: not any(t.alive for t in threads), "all channel threads ended")
