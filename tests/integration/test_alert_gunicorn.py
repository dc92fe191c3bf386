"""The alert-service as it is deployed: gunicorn with its gunicorn.conf.py (gthread),
started the way the local stack and the Dockerfile start it. A live stream works through
it, and SIGTERM ends open streams and the process well within 10 s."""

from __future__ import annotations

import signal
import time
import uuid
from pathlib import Path

import pytest

from fraud_common.kafka.topics import contract_topics, ensure_topics
from tests.support.alert_app import AlertPublisher
from tests.support.alert_sse import SseSubscriber
from tests.support.factories import make_alert
from tools.devstack import ServiceProcess

pytestmark = pytest.mark.integration


def test_gunicorn_serves_the_stream_and_stops_within_ten_seconds_on_sigterm(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path
) -> None:
    suffix = uuid.uuid4().hex[:10]
    alerts_topic = f"fraud-alerts-{suffix}"
    ensure_topics(kafka_bootstrap, contract_topics(f"transactions-{suffix}", alerts_topic))
    service = ServiceProcess.on_free_port(
        "alert",
        {
            "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "REDIS_URL": redis_url,
            "TRANSACTIONS_TOPIC": f"transactions-{suffix}",
            "ALERTS_TOPIC": alerts_topic,
            "CONSUMER_GROUP": f"fraud-alert-group-{suffix}",
            "SSE_HEARTBEAT_SECONDS": "5",
            "LOG_LEVEL": "INFO",
        },
        log_dir=tmp_path,
    )
    url = service.url
    publisher = AlertPublisher(kafka_bootstrap, alerts_topic)
    process = service.start().process
    assert process is not None
    try:
        service.wait_healthy(60)
        user = f"u-{suffix}"
        streams = [SseSubscriber(f"{url}/api/v1/alerts/stream?userId={user}") for _ in range(3)]
        for sub in streams:
            sub.start()
        for sub in streams:
            sub.wait_connected()
        alert = make_alert(user)
        publisher.publish([alert])
        for sub in streams:
            assert [e.id for e in sub.wait_events(1)] == [alert.alertId]

        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)
        took = time.monotonic() - started
        print(f"gunicorn exited {took:.2f} s after SIGTERM with 3 open streams")
        assert process.returncode == 0
        assert took < 10
        for sub in streams:
            sub.wait_until(lambda s=sub: s.ended, timeout=5, what="stream closed")  # type: ignore[misc]
            assert "server shutting down, reconnect to resume" in sub.comments
            sub.close()
    finally:
        publisher.close()
        service.stop()
    output = service.log_path.read_text(errors="replace")
    assert "Traceback" not in output, output[-3000:]
