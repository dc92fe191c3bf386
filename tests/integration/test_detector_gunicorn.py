"""The detector as it is deployed: gunicorn with the service's config, real HTTP, SIGTERM."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests

from fraud_common import keys
from fraud_common.schemas import Decision
from tests.conftest import TopicNames
from tests.support.detector_factories import transaction
from tests.support.detector_running import TopicWriter, committed_offsets, new_group
from tools.devstack import ServiceProcess
from tools.local_services import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def gunicorn_detector(
    kafka_bootstrap: str, redis_url: str, topics: TopicNames, tmp_path: Path
) -> Iterator[tuple[ServiceProcess, str]]:
    group = new_group()
    service = ServiceProcess.on_free_port(
        "detector",
        {
            "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "REDIS_URL": redis_url,
            "TRANSACTIONS_TOPIC": topics.transactions,
            "ALERTS_TOPIC": topics.alerts,
            "CONSUMER_GROUP": group,
            "WEB_CONCURRENCY": "1",
            "LOG_LEVEL": "INFO",
        },
        log_dir=tmp_path,
    )
    try:
        yield service.start(), group
    finally:
        service.stop()


def test_serves_health_processes_and_stops_cleanly_on_sigterm(
    kafka_bootstrap: str,
    topics: TopicNames,
    redis_client: redis.Redis,
    gunicorn_detector: tuple[ServiceProcess, str],
) -> None:
    service, group = gunicorn_detector
    process = service.process
    assert process is not None
    service.wait_healthy(60)
    body = requests.get(service.health_url, timeout=5).json()
    assert body["consumer"]["healthy"] is True

    writer = TopicWriter(kafka_bootstrap, topics.transactions)
    big = transaction(user="gunicorn-user", amount="25000")
    writer.send([big])
    wait_for(
        lambda: redis_client.exists(keys.decision(big.transactionId)) == 1,
        timeout=30,
        what="the decision",
    )
    decision = Decision.model_validate_json(
        redis_client.get(keys.decision(big.transactionId)) or ""
    )
    assert decision.status == "review"

    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert process.wait(15) == 0
    assert time.monotonic() - started < 10
    # The offset of the processed message is committed by the time the worker is gone.
    assert committed_offsets(kafka_bootstrap, group, topics.transactions, 10) == (
        writer.end_offsets(10)
    )
    text = service.log_path.read_text(errors="replace")
    assert "FRAUD ALERT large_transaction_detected" in text
    assert "Traceback" not in text
