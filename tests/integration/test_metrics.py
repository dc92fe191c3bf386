"""``GET /metrics``: the transaction-service under gunicorn with two workers in
prometheus_client's multiprocess mode (real HTTP, real Tansu, real Redis), and the
detector's series after real batches (in-process: the default registry)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from fraud_common import metrics
from tests.conftest import TopicNames
from tests.support.detector_factories import transaction
from tests.support.detector_running import (
    RunningDetector,
    TopicWriter,
    detector_settings,
    new_group,
    start_detector,
)
from tests.support.transaction_server import new_topics, transaction_server
from tools.devstack import REPO, ServiceProcess
from tools.local_services import RedisServer, wait_for

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, have), v in samples.items() if n == name and wanted <= have)


def scrape(url: str) -> Samples:
    response = requests.get(f"{url}/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    return parse(response.text)


# -- the transaction-service under gunicorn, two workers --------------------------


@pytest.fixture(scope="module")
def metrics_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("prometheus-multiproc")
    # What a previous run left: the master must empty the directory on start.
    (path / "counter_999999.db").write_bytes(b"stale")
    return path


@pytest.fixture(scope="module")
def server(
    kafka_bootstrap: str, redis_server_url: str, metrics_dir: Path
) -> Iterator[ServiceProcess]:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "REDIS_URL": redis_server_url,
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        **new_topics(kafka_bootstrap),
    }
    with transaction_server(env, workers=2) as running:
        yield running


def _post(url: str, user: str) -> int:
    body = {"userId": user, "amount": 12.5, "location": "New York", "currency": "USD"}
    # A fresh connection each time, so that both workers get requests.
    response = requests.post(
        f"{url}/api/v1/transactions", json=body, headers={"Connection": "close"}, timeout=10
    )
    return response.status_code


def test_workers_are_summed_and_the_directory_was_emptied(
    server: ServiceProcess, metrics_dir: Path
) -> None:
    assert not (metrics_dir / "counter_999999.db").exists()
    before = scrape(server.url)
    posted = 0

    def both_workers_served() -> bool:
        # A worker writes its own file once it counts something; the kernel decides
        # which worker accepts a connection, so post until both have.
        nonlocal posted
        with ThreadPoolExecutor(max_workers=6) as pool:
            statuses = list(pool.map(lambda i: _post(server.url, f"m-{i}"), range(12)))
        assert statuses == [201] * 12
        posted += 12
        return len(_worker_pids(metrics_dir)) >= 2

    wait_for(both_workers_served, timeout=60, interval=0, what="both workers to serve")

    after = scrape(server.url)
    accepted = "fraud_transactions_accepted_total"
    assert value(after, accepted) - value(before, accepted) == posted
    requests_total = "fraud_http_requests_total"
    route = {"service": "transaction-service", "route": "/api/v1/transactions"}
    assert value(after, requests_total, **route, status="201") - value(
        before, requests_total, **route, status="201"
    ) == (posted)
    duration = "fraud_http_request_duration_seconds_count"
    assert value(after, duration, **route) - value(before, duration, **route) == posted


def _worker_pids(metrics_dir: Path) -> set[str]:
    return {p.stem.rsplit("_", 1)[1] for p in metrics_dir.glob("counter_*.db")}


def test_routes_are_templates_never_raw_paths(server: ServiceProcess) -> None:
    unknown = f"no-such-{uuid.uuid4().hex}"
    assert requests.get(f"{server.url}/api/v1/transactions/{unknown}", timeout=5).status_code == 404
    assert requests.get(f"{server.url}/{unknown}", timeout=5).status_code == 404
    response = requests.get(f"{server.url}/metrics", timeout=10)
    assert unknown not in response.text
    samples = parse(response.text)
    name = "fraud_http_requests_total"
    templated = {"route": "/api/v1/transactions/<transaction_id>", "status": "404"}
    assert value(samples, name, service="transaction-service", **templated) >= 1
    assert value(samples, name, service="transaction-service", route="unmatched") >= 1


# -- the detector's series ---------------------------------------------------------


@pytest.fixture(scope="module")
def detector(
    kafka_bootstrap: str, redis_server: RedisServer, module_topics: TopicNames
) -> Iterator[RunningDetector]:
    running = start_detector(
        detector_settings(kafka_bootstrap, redis_server.url, module_topics, new_group())
    )
    yield running
    running.stop()


def _detector_metrics(detector: RunningDetector) -> Samples:
    response = detector.app.test_client().get("/metrics")
    assert response.status_code == 200
    return parse(response.get_data(as_text=True))


def test_detector_counts_decisions_rule_hits_latency_dead_letters_and_lag(
    detector: RunningDetector, writer: TopicWriter, module_topics: TopicNames
) -> None:
    before = _detector_metrics(detector)
    now = datetime.now(UTC) - timedelta(seconds=1)
    user = f"metrics-{uuid.uuid4().hex[:8]}"
    batch = [
        transaction(user=user, amount="25000.00", at=now),
        transaction(user=f"{user}-small", amount="10.00", at=now),
    ]
    writer.send([*batch, b"not json at all"])
    wait_for(
        lambda: detector.status.processed + detector.status.dead_lettered >= 3,
        timeout=60,
        what="the detector to process the three messages",
    )
    group = detector.settings.consumer_group

    def moved() -> bool:
        after = _detector_metrics(detector)
        return value(after, "fraud_consumer_lag", group=group) == 0 and any(
            n == "fraud_consumer_lag" and ("group", group) in labels for n, labels in after
        )

    wait_for(moved, timeout=15, what="the lag series of the group, caught up")
    after = _detector_metrics(detector)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    evaluated = "fraud_transactions_evaluated_total"
    assert delta(evaluated) == 2
    assert delta(evaluated, decision="approve") == 1
    hits = delta("fraud_rule_hits_total", rule="large-amount", mode="active")
    assert hits == 1
    assert delta("fraud_decision_latency_seconds_count") == 2
    assert delta("fraud_evaluation_duration_seconds_count") >= 1
    assert delta("fraud_dead_letters_total", topic=module_topics.transactions_dlq) == 1
    routes = {n_labels for n_labels in after if n_labels[0] == "fraud_consumer_lag"}
    assert {dict(labels)["topic"] for _, labels in routes} >= {module_topics.transactions}

    # Evaluated again (a redelivery): the first decisions stand, nothing counted twice.
    writer.send(batch)
    processed = detector.status.processed
    wait_for(lambda: detector.status.processed >= processed + 2, timeout=30, what="redelivery")
    again = _detector_metrics(detector)
    assert value(again, evaluated) == value(after, evaluated)


# -- multiprocess gauges -------------------------------------------------------------

_SET_LAG = """
import sys
from fraud_common import metrics
metrics.CONSUMER_LAG.labels("g", "t", "0").set(float(sys.argv[1]))
print("set", flush=True)
sys.stdin.read()  # alive until the test closes stdin
"""


def test_lag_is_the_live_owners_and_a_dead_workers_value_goes(tmp_path: Path) -> None:
    """Two processes report the same partition's lag (the one that lost it reports 0):
    /metrics shows the larger, and once that process is gone (no child_exit hook ran),
    its value no longer counts."""
    env = {**os.environ, metrics.MULTIPROC_ENV: str(tmp_path)}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _SET_LAG, lag],
            env=env,
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for lag in ("7", "0")
    ]
    try:
        for process in processes:
            assert process.stdout is not None and process.stdout.readline() == "set\n"
        assert _lag_in(tmp_path) == 7.0
        owner = processes[0]
        assert owner.stdin is not None
        owner.stdin.close()
        owner.wait(10)
        assert _lag_in(tmp_path) == 0.0  # the live one's value, the dead one's dropped
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(10)


def _lag_in(path: Path) -> float | None:
    """``fraud_consumer_lag`` as /metrics serves it with ``path`` as the directory."""
    script = (
        "from fraud_common import metrics; import sys; "
        "sys.stdout.write(metrics.exposition()[0].decode())"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, metrics.MULTIPROC_ENV: str(path)},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    samples = parse(result.stdout)
    lag = [v for (name, _), v in samples.items() if name == "fraud_consumer_lag"]
    return lag[0] if lag else None
