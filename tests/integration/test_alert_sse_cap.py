"""Idle stream subscribers cannot starve the alert-service: gunicorn as deployed (its
gunicorn.conf.py, default SSE_MAX_SUBSCRIBERS) with 150 idle subscribers holding
connections, the cap refuses the surplus with 503 + Retry-After, and the API and
/health still answer within 1 s meanwhile. Real HTTP, real Redis and broker."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from tests.conftest import TopicNames
from tests.support.alert_sse import SseSubscriber
from tools.devstack import ServiceProcess
from tools.local_services import wait_for

pytestmark = pytest.mark.integration

KEY = "sse-cap-test-key-0123456789abcdef"
CAP = 50  # AlertServiceSettings.sse_max_subscribers' default, which the service runs with
CLIENTS = 150


def test_150_idle_subscribers_get_the_cap_and_the_api_still_answers_within_a_second(
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
            "API_KEYS": KEY,
            "SSE_MAX_SUBSCRIBERS": None,  # the default, as deployed
            "LOG_LEVEL": "WARNING",
        },
        log_dir=tmp_path,
    )
    url = service.url
    headers = {"X-API-Key": KEY}
    service.start()
    subs = [SseSubscriber(f"{url}/api/v1/alerts/stream", headers=headers) for _ in range(CLIENTS)]
    try:
        service.wait_healthy(60)
        for sub in subs:
            sub.start()
        for sub in subs:
            sub.wait_connected(timeout=30)  # the stream's first comments, or the refusal
        statuses = sorted(sub.status for sub in subs)
        assert statuses == [200] * CAP + [503] * (CLIENTS - CAP), statuses
        for sub in subs:
            if sub.status == 503:
                assert int(sub.response_headers["Retry-After"]) >= 1
                assert "too many live streams" in sub.comments[0]

        # The 50 held streams occupy 50 threads; the API and health still find one.
        timings: dict[str, list[float]] = {"alerts": [], "health": []}
        session = requests.Session()
        for _ in range(20):
            started = time.monotonic()
            listed = session.get(f"{url}/api/v1/alerts", headers=headers, timeout=5)
            timings["alerts"].append(time.monotonic() - started)
            assert listed.status_code == 200
            started = time.monotonic()
            health = session.get(f"{url}/health", timeout=5)
            timings["health"].append(time.monotonic() - started)
            assert health.status_code == 200, health.text
        assert session.get(f"{url}/api/v1/alerts", timeout=5).status_code == 401
        worst = {name: max(values) for name, values in timings.items()}
        print(
            f"with {CAP} open streams and {CLIENTS - CAP} refused: worst GET /api/v1/alerts "
            f"{worst['alerts'] * 1000:.1f} ms, worst GET /health {worst['health'] * 1000:.1f} ms"
        )
        assert max(worst.values()) < 1.0, timings
        assert all(not sub.ended for sub in subs if sub.status == 200)  # still held open

        # Gone subscribers give their slots back: a new one is served again.
        for sub in subs:
            sub.close()

        def served_again() -> bool:
            with SseSubscriber(f"{url}/api/v1/alerts/stream", headers=headers) as again:
                again.wait_connected()
                return again.status == 200

        wait_for(served_again, timeout=30, interval=0.5, what="a stream slot freed")
    finally:
        for sub in subs:
            sub.close()
        service.stop()
    output = service.log_path.read_text(errors="replace")
    assert "Traceback" not in output, output[-3000:]
