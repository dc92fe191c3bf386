"""Nothing a record carries can stop detection for anyone else (issue 7, items 1, 2, 5).

Real Tansu, real Redis, the detector's own consumer loop. Each poison record gets its
dead letter (and, where it names a transaction, the decision ``error`` with the reason),
a large transaction sent right after still alerts within seconds, and the detector's
health stays 200 throughout. A redelivery judged by changed rules keeps its first
decision and sends exactly the alerts it sent before.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from fraud_common import keys
from fraud_common.schemas import Alert, Decision, Transaction, alert_id
from fraud_detection.rules import RULE_TYPES
from tests.conftest import TopicNames
from tests.support.detector_factories import transaction
from tests.support.detector_running import (
    RunningDetector,
    TopicWriter,
    detector_settings,
    new_group,
    read_to_end,
    serve,
    start_detector,
)
from tests.support.kafka_reading import read_topic
from tests.support.rules_files import rules_document, write_rules
from tests.support.transaction_server import transaction_server
from tools.local_services import RedisServer, wait_for

pytestmark = pytest.mark.integration

LARGE = "large_transaction_detected"


@pytest.fixture(scope="module")
def detector(
    kafka_bootstrap: str, redis_server: RedisServer, module_topics: TopicNames
) -> Iterator[RunningDetector]:
    running = start_detector(
        detector_settings(kafka_bootstrap, redis_server.url, module_topics, new_group())
    )
    yield running
    running.stop()


@pytest.fixture(scope="module")
def health_url(detector: RunningDetector) -> Iterator[str]:
    with serve(detector.app) as url:
        wait_for(lambda: _health(f"{url}/health") == 200, timeout=60, what="detector healthy")
        yield f"{url}/health"


def _health(url: str) -> int:
    return requests.get(url, timeout=5).status_code


def _decision_of(store: redis.Redis, transaction_id: str) -> Decision | None:
    raw = store.get(keys.decision(transaction_id))
    return None if raw is None else Decision.model_validate_json(raw)


def _await_decisions(
    store: redis.Redis, ids: list[str], health_url: str, *, timeout: float = 30
) -> dict[str, Decision]:
    """Wait for every decision, checking the detector's health on every round."""
    statuses: list[int] = []

    def all_there() -> bool:
        statuses.append(_health(health_url))
        return all(store.exists(keys.decision(i)) for i in ids)

    wait_for(all_there, timeout=timeout, what=f"decisions of {ids}")
    assert set(statuses) == {200}, f"detector health went {statuses}"
    decided = {i: _decision_of(store, i) for i in ids}
    return {i: d for i, d in decided.items() if d is not None}


def _raw(txn: Transaction, **changes: Any) -> bytes:
    body = json.loads(txn.to_json())
    body.update(changes)
    return json.dumps(body).encode()


def _dead_letters(bootstrap: str, topics: TopicNames, wanted: list[bytes]) -> dict[bytes, str]:
    messages = read_topic(bootstrap, topics.transactions_dlq, expect=len(wanted), timeout=30)
    reasons = {}
    for message in messages:
        headers = {k: (v or b"").decode() for k, v in message.headers() or []}
        assert headers["dlq-original-topic"] == topics.transactions
        reasons[message.value() or b""] = headers["dlq-error"]
    missing = [w for w in wanted if w not in reasons]
    assert not missing, f"not dead-lettered: {missing}"
    return reasons


def test_poison_records_on_the_topic_are_set_aside_and_detection_goes_on(
    kafka_bootstrap: str,
    module_topics: TopicNames,
    detector: RunningDetector,
    health_url: str,
    store: redis.Redis,
    writer: TopicWriter,
) -> None:
    year_one = transaction(user=f"poison-{uuid.uuid4().hex[:6]}")
    overflow = transaction(user=f"poison-{uuid.uuid4().hex[:6]}")
    huge_usd = transaction(user=f"poison-{uuid.uuid4().hex[:6]}")
    poison = [
        _raw(year_one, timestamp="0001-01-01T00:00:00Z"),  # schema-valid but for the time
        _raw(overflow, amount="9e999999999"),  # beyond the Decimal context's exponent
        _raw(huge_usd, amountUsd="1e999999"),
        b'{"transactionId": "\xff\xfe", "amount": 1}',  # not UTF-8
    ]
    large = transaction(user=f"after-{uuid.uuid4().hex[:6]}", amount="20000")
    started = time.monotonic()
    writer.send([*poison, large])

    decided = _await_decisions(
        store, [large.transactionId, year_one.transactionId, overflow.transactionId], health_url
    )
    assert decided[large.transactionId].status == "review"
    alerts = [
        Alert.model_validate_json(m.value() or b"")
        for m in read_to_end(kafka_bootstrap, module_topics.alerts)
        if (m.value() or b"").find(large.transactionId.encode()) >= 0
    ]
    assert {a.alertId for a in alerts} == {alert_id(large.transactionId, LARGE)}
    assert time.monotonic() - started < 20, "the large one alerted only after a long stall"

    reasons = _dead_letters(kafka_bootstrap, module_topics, poison)
    assert "1970" in reasons[poison[0]]
    assert "amount" in reasons[poison[1]]
    assert "amountUsd" in reasons[poison[2]]
    assert "UTF-8" in reasons[poison[3]]
    error = decided[year_one.transactionId]
    assert (error.status, error.riskScore) == ("error", None)
    assert error.error is not None and "1970" in error.error
    assert decided[overflow.transactionId].status == "error"
    assert detector.status.last_error is None


def test_a_record_failing_in_redis_is_set_aside_and_its_batch_goes_on(
    kafka_bootstrap: str,
    module_topics: TopicNames,
    health_url: str,
    store: redis.Redis,
    writer: TopicWriter,
) -> None:
    """One user's state is not a sorted set (a bug, an operator's mistake): the state
    script fails for that user's record only; the records around it are decided."""
    broken_user = f"broken-{uuid.uuid4().hex[:6]}"
    store.set(keys.user_window(broken_user), "not a sorted set")
    before = transaction(user=f"fine-{uuid.uuid4().hex[:6]}", amount="15000")
    broken = transaction(user=broken_user)
    after = transaction(user=f"fine-{uuid.uuid4().hex[:6]}", amount="15000")
    writer.send([before, broken, after])

    decided = _await_decisions(
        store, [before.transactionId, broken.transactionId, after.transactionId], health_url
    )
    assert decided[before.transactionId].status == "review"
    assert decided[after.transactionId].status == "review"
    failed = decided[broken.transactionId]
    assert failed.status == "error"
    assert failed.error is not None and "WRONGTYPE" in failed.error
    reasons = _dead_letters(kafka_bootstrap, module_topics, [broken.to_json().encode()])
    assert "WRONGTYPE" in reasons[broken.to_json().encode()]


def test_a_rule_that_raises_costs_only_its_own_say(
    monkeypatch: pytest.MonkeyPatch,
    health_url: str,
    store: redis.Redis,
    writer: TopicWriter,
) -> None:
    location = RULE_TYPES["location_change"]

    def fragile(context: Any, rule_params: Any) -> Any:
        if context.transaction.location == "Boom City":
            raise ArithmeticError("a bug in the location rule")
        return location.evaluate(context, rule_params)

    monkeypatch.setitem(RULE_TYPES, "location_change", replace(location, evaluate=fragile))
    txn = transaction(user=f"boom-{uuid.uuid4().hex[:6]}", amount="20000", location="Boom City")
    writer.send([txn])
    decision = _await_decisions(store, [txn.transactionId], health_url)[txn.transactionId]
    assert decision.status == "review"
    assert [r.ruleId for r in decision.reasons] == ["large-amount"]
    assert [(e.ruleId, e.error) for e in decision.ruleErrors] == [
        ("location-change", "ArithmeticError: a bug in the location rule")
    ]


def test_a_redelivery_under_changed_rules_keeps_the_first_decision(
    tmp_path: Path,
    kafka_bootstrap: str,
    topic_factory: Callable[[], TopicNames],
    redis_server: RedisServer,
    store: redis.Redis,
) -> None:
    topics = topic_factory()
    own_writer = TopicWriter(kafka_bootstrap, topics.transactions)
    user = f"replay-{uuid.uuid4().hex[:6]}"
    txn = transaction(user=user, amount="15000")
    strict = start_detector(
        detector_settings(kafka_bootstrap, redis_server.url, topics, new_group())
    )
    try:
        own_writer.send([txn])
        wait_for(lambda: _decision_of(store, txn.transactionId), timeout=60, what="decision")
    finally:
        strict.stop()
    first = _decision_of(store, txn.transactionId)
    assert first is not None and first.status == "review"

    # A detector whose threshold the amount no longer passes reads the topic again from
    # the start (a new group), as after a restart that lost its committed offsets.
    lenient = start_detector(
        detector_settings(
            kafka_bootstrap,
            redis_server.url,
            topics,
            new_group(),
            rules_file=write_rules(
                tmp_path / "rules.yaml",
                rules_document(params={"large-amount": {"threshold_usd": 100000}}),
            ),
        )
    )
    try:
        marker = transaction(user=user, at=txn.timestamp + timedelta(hours=1))
        own_writer.send([marker])  # same user, same partition: read after the replay
        wait_for(lambda: _decision_of(store, marker.transactionId), timeout=60, what="marker")
    finally:
        lenient.stop()
    assert lenient.status.processed >= 2
    assert _decision_of(store, txn.transactionId) == first, "a redelivery changed a decision"
    sent = [
        m.value()
        for m in read_to_end(kafka_bootstrap, topics.alerts)
        if txn.transactionId.encode() in (m.value() or b"")
    ]
    assert len(sent) == 2, "the redelivery sends its alerts again (idempotent downstream)"
    assert len(set(sent)) == 1, "the redelivered alert differs from the first"
    assert Alert.model_validate_json(sent[0] or b"").rulesVersion == first.rulesVersion


# --- through the public API ---------------------------------------------------------


def _body(**changes: Any) -> dict[str, Any]:
    user = f"api-{uuid.uuid4().hex[:8]}"
    return {"userId": user, "amount": "20.00", "currency": "USD", "location": "Paris", **changes}


def _iso(at: datetime, offset_hours: int) -> str:
    return at.astimezone(timezone(timedelta(hours=offset_hours))).isoformat()


@pytest.fixture(scope="module")
def transaction_api(
    kafka_bootstrap: str, redis_server: RedisServer, module_topics: TopicNames
) -> Iterator[str]:
    with transaction_server(
        {
            "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "REDIS_URL": redis_server.url,
            **module_topics.as_env(),
        }
    ) as service:
        yield service.url


@pytest.mark.parametrize(
    ("timestamp", "says"),
    [
        ("0001-01-01T00:00:00Z", "before 1970"),
        ("1900-01-01T00:00:00Z", "before 1970"),
        (0, "seconds in the past"),
        ("8 days ago", "seconds in the past"),
        (1e300, "out of range"),
        ("2016-12-31T23:59:60Z", "leap second"),
    ],
)
def test_poison_timestamps_are_a_400_on_timestamp(
    transaction_api: str, health_url: str, timestamp: Any, says: str
) -> None:
    if timestamp == "8 days ago":
        timestamp = (datetime.now(UTC) - timedelta(days=8)).isoformat()
    response = requests.post(
        f"{transaction_api}/api/v1/transactions", json=_body(timestamp=timestamp), timeout=10
    )
    assert response.status_code == 400, response.text
    (detail,) = response.json()["error"]["details"]
    assert detail["field"] == "timestamp"
    assert says in detail["message"]
    assert _health(health_url) == 200


def test_far_offsets_are_accepted_and_detection_stays_prompt(
    transaction_api: str, health_url: str, store: redis.Redis
) -> None:
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    ids = []
    for hours in (14, -12):
        response = requests.post(
            f"{transaction_api}/api/v1/transactions",
            json=_body(timestamp=_iso(now, hours)),
            timeout=10,
        )
        assert response.status_code == 201, response.text
        assert response.json()["transaction"]["timestamp"] == now.isoformat().replace(
            "+00:00", ".000Z"
        )
        ids.append(response.json()["transactionId"])
    large = requests.post(
        f"{transaction_api}/api/v1/transactions", json=_body(amount="25000"), timeout=10
    ).json()
    decided = _await_decisions(store, [*ids, large["transactionId"]], health_url, timeout=15)
    assert decided[large["transactionId"]].status == "review"
    view = requests.get(
        f"{transaction_api}/api/v1/transactions/{large['transactionId']}", timeout=10
    ).json()
    assert view["status"] == "review"
    assert [r["ruleId"] for r in view["reasons"]] == ["large-amount"]
    assert (view["amountUsd"], view["fxRate"]) == ("25000", "1")  # exact, stamped at ingest


def test_an_error_decision_is_readable_with_its_reason(
    transaction_api: str, health_url: str, store: redis.Redis, writer: TopicWriter
) -> None:
    """A record stored as accepted whose message cannot be evaluated (here: written by
    something else with a year-1 timestamp) reads back as ``error`` with the reason."""
    txn = transaction(user=f"stray-{uuid.uuid4().hex[:6]}")
    stray = _raw(txn, timestamp="0001-01-01T00:00:00Z")
    store.set(keys.transaction(txn.transactionId), stray)
    writer.send([stray])
    _await_decisions(store, [txn.transactionId], health_url)
    view = requests.get(
        f"{transaction_api}/api/v1/transactions/{txn.transactionId}", timeout=10
    ).json()
    assert view["status"] == "error"
    assert "1970" in view["error"]
    assert view["riskScore"] is None
