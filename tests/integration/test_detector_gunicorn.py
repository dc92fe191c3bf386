"""The detector as it is deployed: gunicorn with the service's config, real HTTP, SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
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
from tools.local_services import free_port, wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SERVICE_DIR = ROOT / "fraud-detection-service"


def _healthy(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


@pytest.fixture
def gunicorn_detector(
    kafka_bootstrap: str, redis_url: str, topics: TopicNames, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[bytes], str, str, Path]]:
    port, group = free_port(), new_group()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(SERVICE_DIR)]),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "REDIS_URL": redis_url,
        "TRANSACTIONS_TOPIC": topics.transactions,
        "ALERTS_TOPIC": topics.alerts,
        "CONSUMER_GROUP": group,
        "WEB_CONCURRENCY": "1",
        "LOG_LEVEL": "INFO",
    }
    log = tmp_path / "detector.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py",
             "fraud_detection:create_app()"],
            cwd=SERVICE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        yield process, f"http://127.0.0.1:{port}", group, log
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def test_serves_health_processes_and_stops_cleanly_on_sigterm(
    kafka_bootstrap: str,
    topics: TopicNames,
    redis_client: redis.Redis,
    gunicorn_detector: tuple[subprocess.Popen[bytes], str, str, Path],
) -> None:
    process, url, group, log = gunicorn_detector
    wait_for(lambda: _healthy(f"{url}/health"), timeout=60, what="gunicorn detector healthy")
    body = requests.get(f"{url}/health", timeout=5).json()
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
    text = log.read_text(errors="replace")
    assert "FRAUD ALERT large_transaction_detected" in text
    assert "Traceback" not in text
