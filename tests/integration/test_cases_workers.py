"""Two alert-service processes (gunicorn, as deployed) in one consumer group on one
alerts topic: every user ends with exactly one open case holding each of its alerts
once, although its alerts arrive on several partitions (so both processes take the same
user's alerts at the same time) and some alerts are published twice (a redelivery, on
another partition than the first copy)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import TopicNames
from tests.support.alert_app import AlertPublisher
from tests.support.cases_support import CasesClient, rule_alert
from tools.devstack import ServiceProcess
from tools.local_services import wait_for

pytestmark = pytest.mark.integration

USERS = [f"w-{i}" for i in range(6)]
PER_USER = 10


@pytest.fixture
def workers(
    kafka_bootstrap: str,
    redis_url: str,
    tmp_path: Path,
    topics: TopicNames,
    unique_group: Callable[[str], str],
) -> Iterator[list[ServiceProcess]]:
    group = unique_group("fraud-alert-group")
    services = [
        ServiceProcess.on_free_port(
            "alert",
            {
                "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
                "REDIS_URL": redis_url,
                **topics.as_env(),
                "CONSUMER_GROUP": group,
                "LOG_LEVEL": "INFO",
            },
            log_dir=tmp_path / f"worker-{i}",
        )
        for i in range(2)
    ]
    try:
        for service in services:
            service.start()
        for service in services:
            service.wait_healthy(60)
        yield services
    finally:
        for service in services:
            service.stop()
    for service in services:
        output = service.log_path.read_text(errors="replace")
        assert "Traceback" not in output, output[-3000:]


def test_two_workers_group_each_users_alerts_into_one_open_case(
    kafka_bootstrap: str, topics: TopicNames, workers: list[ServiceProcess]
) -> None:
    alerts = [rule_alert(u, "large-amount", 50 + n) for n in range(PER_USER) for u in USERS]
    publisher = AlertPublisher(kafka_bootstrap, topics.alerts)
    try:
        # Keyed by alert, not by user: one user's alerts spread over the partitions.
        messages = [(a.to_json(), a.alertId) for a in alerts]
        redelivered = [(a.to_json(), f"again-{a.alertId}") for a in alerts[::3]]
        publisher.publish_raw(messages + redelivered)
    finally:
        publisher.close()
    client = CasesClient(workers[0].url)

    def settled() -> bool:
        quality = client.quality().get("large-amount")
        return quality is not None and quality["alerts"] == len(alerts)

    wait_for(settled, timeout=90, what="every alert counted")
    # Both processes' redeliveries are through too: each alert of the second wave is in.
    wait_for(
        lambda: sum(c["alertCount"] for c in client.all_cases()) == len(alerts),
        timeout=30,
        what="every alert in a case",
    )
    cases = client.all_cases(status="open", limit=4)
    assert sorted(c["userId"] for c in cases) == sorted(USERS)  # one open case per user
    for case in cases:
        detail = client.get(case["caseId"]).json()
        ids = [a["alertId"] for a in detail["alerts"]]
        assert len(ids) == len(set(ids)) == PER_USER == detail["alertCount"]
        assert detail["maxRiskScore"] == 50 + PER_USER - 1
        assert [h["action"] for h in detail["history"]].count("opened") == 1
    assert client.all_cases(status="closed") == []
    # Served alike by the other process (one store behind both).
    assert CasesClient(workers[1].url).all_cases(status="open") == client.all_cases(status="open")
    consumed = [
        s.log_path.read_text(errors="replace").count("ALERT large_transaction") for s in workers
    ]
    print(f"alerts first stored per process: {consumed}")
