"""The email channel against a real local SMTP server (aiosmtpd) and a real Redis."""

from __future__ import annotations

import pytest
import redis

from tests.support.factories import make_alert
from tests.support.notify_support import (
    SmtpSink,
    dlq_producer,
    notify_settings,
    pending,
    publish,
    start_channels,
    wait_until,
)

pytestmark = pytest.mark.integration


def test_alert_email_has_subject_text_and_html(
    redis_client: redis.Redis, redis_url: str, kafka_bootstrap: str
) -> None:
    alert = make_alert("u123", amount="25000", currency="USD", location="Tokyo")
    with SmtpSink() as smtp, dlq_producer(kafka_bootstrap) as producer:
        settings = notify_settings(
            redis_url,
            kafka_bootstrap,
            smtp_host="127.0.0.1",
            smtp_port=smtp.port,
            email_from="alerts@fraud.example",
            email_to="ops@example.com, risk@example.com",
        )
        with start_channels(settings, redis_client, producer) as channels:
            assert [w.channel for w in channels.workers] == ["email"]
            publish(redis_client, alert)
            wait_until(lambda: len(smtp.mails) == 1, "one mail")
            wait_until(lambda: pending(redis_client, channels.workers[0]) == 0, "acknowledged")

    (mail,) = smtp.mails
    assert mail.envelope_from == "alerts@fraud.example"
    assert mail.recipients == ["ops@example.com", "risk@example.com"]
    message = mail.message
    assert (
        message["Subject"] == "[fraud alert] Large transaction: user u123, 25,000.00 USD in Tokyo"
    )
    assert message["To"] == "ops@example.com, risk@example.com"
    assert message["X-Alert-Id"] == alert.alertId
    assert message["Message-ID"] == f"<{alert.alertId}@fraud.example>"
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    text_content, html_content = text.get_content(), html.get_content()
    for expected in ("u123", "25,000.00 USD", "Tokyo", alert.alertId, "threshold"):
        assert expected in text_content
        assert expected in html_content
    assert "<table" in html_content


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_smtp_failures_are_retried_and_login_is_used(
    redis_client: redis.Redis, redis_url: str, kafka_bootstrap: str
) -> None:
    with (
        SmtpSink(fail_first=2, credentials=("mailer", "s3cret")) as smtp,
        dlq_producer(kafka_bootstrap) as producer,
    ):
        settings = notify_settings(
            redis_url,
            kafka_bootstrap,
            smtp_host="127.0.0.1",
            smtp_port=smtp.port,
            smtp_username="mailer",
            smtp_password="s3cret",
            email_to=["ops@example.com"],
        )
        with start_channels(settings, redis_client, producer) as channels:
            (worker,) = channels.workers
            publish(redis_client, alert := make_alert("u7"))
            wait_until(lambda: len(smtp.mails) == 1, "accepted on the third attempt")
            wait_until(lambda: pending(redis_client, worker) == 0, "acknowledged")

    assert smtp.attempts == 3
    assert smtp.mails[0].login == "mailer"
    assert smtp.mails[0].message["X-Alert-Id"] == alert.alertId
    assert worker.stats.failed_attempts == 2
    assert worker.stats.last_error is not None and worker.stats.last_error.startswith("smtp 451")
