"""A fixed scenario file of transactions gives exactly the expected decisions (issue 8):
every rule type, the thresholds, shadow and allow, through a real detector (its consumer
loop, state script, lists and rules file) on a real broker and Redis."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
import yaml

from fraud_common import keys
from fraud_common.redis_client import connect
from fraud_common.schemas import Decision
from fraud_detection.lists import ListStore
from tests.conftest import TopicNames
from tests.support.detector_factories import transaction
from tests.support.detector_running import (
    TopicWriter,
    detector_settings,
    new_group,
    start_detector,
)
from tests.support.rules_files import write_rules
from tools.local_services import RedisServer, wait_for

pytestmark = pytest.mark.integration

SCENARIO = Path(__file__).resolve().parents[1] / "data" / "decision_scenarios.yaml"


def test_the_scenario_file_gives_exactly_the_expected_decisions(
    tmp_path: Path,
    kafka_bootstrap: str,
    redis_server: RedisServer,
    topic_factory: Callable[[], TopicNames],
    store: redis.Redis,
) -> None:
    scenario = yaml.safe_load(SCENARIO.read_text(encoding="utf-8"))
    run = uuid.uuid4().hex[:6]
    user = lambda name: f"{name}-{run}"  # noqa: E731
    lists = ListStore(connect(redis_server.url))  # a client as the services make it
    for name, values in scenario["lists"].items():
        for value in values:
            lists.put(name, user(value), reason="scenario")
    rules = scenario["rules"]
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
    sent = [
        (
            transaction(
                user=user(name),
                amount=amount,
                location=place,
                at=base + timedelta(seconds=at),
            ),
            status,
            reasons,
            shadow,
        )
        for name, at, amount, place, status, reasons, shadow in scenario["transactions"]
    ]
    topics = topic_factory()
    detector = start_detector(
        detector_settings(
            kafka_bootstrap,
            redis_server.url,
            topics,
            new_group(),
            rules_file=write_rules(tmp_path / "rules.yaml", rules),
        )
    )
    try:
        TopicWriter(kafka_bootstrap, topics.transactions).send([t for t, *_ in sent])
        wait_for(
            lambda: all(store.exists(keys.decision(t.transactionId)) for t, *_ in sent),
            timeout=60,
            what="every decision",
        )
    finally:
        detector.stop()
    got = []
    for txn, *_ in sent:
        decision = Decision.model_validate_json(store.get(keys.decision(txn.transactionId)) or "")
        got.append(
            (
                decision.status,
                [r.ruleId for r in decision.reasons],
                [r.ruleId for r in decision.shadowHits],
            )
        )
    wanted = [(status, reasons, shadow) for _, status, reasons, shadow in sent]
    assert got == wanted
