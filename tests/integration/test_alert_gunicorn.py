"""The alert-service as it is deployed: gunicorn with its gunicorn.conf.py (gthread),
started the way the local stack and the Dockerfile start it. A live stream works through
it, and SIGTERM ends open streams and the process well within 10 s."""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import TopicNames
from tests.support.alert_app import AlertPublisher
from tests.support.alert_sse import SseSubscriber
from tests.support.factories import make_alert
from tools.devstack import ServiceProcess

pytestmark = pytest.mark.integration


def test_gunicorn_serves_the_stream_and_stops_within_ten_seconds_on_sigterm(
    kafka_bootstrap: str,
    redis_url: str,
    tmp_path: Path,
    topics: TopicNames,
    unique_group: Callable[[str], str],
) -> None:
    service = ServiceProcess.on_free_port(
        "alert",
        {
            "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "REDIS_URL": redis_url,
            **topics.as_env(),
            "CONSUMER_GROUP": unique_group("fraud-alert-group"),
            "SSE_HEARTBEAT_SECONDS": "5",
            "LOG_LEVEL": "INFO",
        },
        log_dir=tmp_path,
    )
    url = service.url
    publisher = AlertPublisher(kafka_bootstrap, topics.alerts)
    process = service.start().process
    assert process is not None
    try:
        service.wait_healthy(60)
        user = f"u-{uuid.uuid4().hex[:10]}"
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
