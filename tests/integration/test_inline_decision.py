"""``Prefer: wait=N``: the decision inline in the 201, over real HTTP (gunicorn), real
Tansu, real Redis, and a real detector in this process on the same topics and Redis.

Two services share the module's Redis: ``decided`` publishes to the topics the detector
consumes; ``undecided`` to topics nobody consumes, so nothing decides its transactions
unless a test writes the decision itself (as the detector does: the decision, then one
element on the transaction's ready list, in one pipeline)."""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import redis
import requests

from fraud_common import keys
from fraud_common.schemas import Decision, DecisionStatus, Reason
from tests.conftest import TopicNames
from tests.support.detector_running import (
    RunningDetector,
    detector_settings,
    new_group,
    start_detector,
)
from tests.support.transaction_server import assert_conforms, new_topics, transaction_server
from tools.devstack import ServiceProcess
from tools.local_services import RedisServer, wait_for
from transaction_service.idempotency import scoped_key

pytestmark = pytest.mark.integration

TRANSACTIONS = "/api/v1/transactions"
BATCH = "/api/v1/transactions/batch"
APPLIED = "Preference-Applied"


@pytest.fixture(scope="module")
def decided(
    kafka_bootstrap: str, redis_server: RedisServer, module_topics: TopicNames
) -> Iterator[ServiceProcess]:
    env = {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "REDIS_URL": redis_server.url}
    with transaction_server({**env, **module_topics.as_env()}) as running:
        yield running


@pytest.fixture(scope="module")
def undecided(kafka_bootstrap: str, redis_server: RedisServer) -> Iterator[ServiceProcess]:
    env = {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "REDIS_URL": redis_server.url}
    with transaction_server({**env, **new_topics(kafka_bootstrap)}) as running:
        yield running


@pytest.fixture(scope="module")
def detector(
    kafka_bootstrap: str,
    redis_server: RedisServer,
    module_topics: TopicNames,
    decided: ServiceProcess,
) -> Iterator[RunningDetector]:
    """The detector, warmed up: it has decided one transaction posted through
    ``decided`` (gazetteer loaded, partitions assigned)."""
    running = start_detector(
        detector_settings(kafka_bootstrap, redis_server.url, module_topics, new_group())
    )
    try:
        created = post(decided, a_transaction())
        assert created.status_code == 201, created.text
        transaction_id = created.json()["transactionId"]
        wait_for(lambda: status_of(decided, transaction_id) != "pending", timeout=60)
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def document(undecided: ServiceProcess) -> dict[str, Any]:
    document: dict[str, Any] = requests.get(
        f"{undecided.url}/api/v1/openapi.json", timeout=10
    ).json()
    return document


def a_transaction(**fields: Any) -> dict[str, Any]:
    return {
        "userId": f"inline-{uuid.uuid4().hex[:12]}",
        "amount": "12.50",
        "currency": "USD",
        "location": "New York",
        **fields,
    }


def post(
    service: ServiceProcess, body: Any, path: str = TRANSACTIONS, **headers: str
) -> requests.Response:
    return requests.post(f"{service.url}{path}", json=body, headers=headers, timeout=30)


def timed(call: Callable[[], requests.Response]) -> tuple[requests.Response, float]:
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def status_of(service: ServiceProcess, transaction_id: str) -> str:
    response = requests.get(f"{service.url}{TRANSACTIONS}/{transaction_id}", timeout=10)
    assert response.status_code == 200, response.text
    return str(response.json()["status"])


def stored_text(store: redis.Redis, key: str) -> str:
    value = store.get(key)
    assert isinstance(value, str), f"{key} is not stored"
    return value


def stored_transaction_id(store: redis.Redis, idempotency_key: str) -> str:
    """The transactionId of the response stored for ``idempotency_key``."""
    record = json.loads(stored_text(store, keys.idempotency(scoped_key(idempotency_key))))
    return str(json.loads(record["body"])["transactionId"])


def rule_ids(decision: dict[str, Any]) -> list[str]:
    return [reason["ruleId"] for reason in decision["reasons"]]


def assert_matches_stored(store: redis.Redis, transaction_id: str, inline: dict[str, Any]) -> None:
    """The inline decision is the stored one, as GET shows it (reasons without details)."""
    stored = Decision.model_validate_json(stored_text(store, keys.decision(transaction_id)))
    assert inline["status"] == stored.status
    assert inline["riskScore"] == stored.riskScore
    assert inline["rulesVersion"] == stored.rulesVersion
    assert rule_ids(inline) == [r.ruleId for r in stored.reasons]
    assert all("details" not in reason for reason in inline["reasons"])


# --- decided by the detector ----------------------------------------------------------


def test_a_small_amount_is_approved_inline(
    decided: ServiceProcess,
    detector: RunningDetector,
    store: redis.Redis,
    document: dict[str, Any],
) -> None:
    response, elapsed = timed(lambda: post(decided, a_transaction(), Prefer="wait=2"))

    assert response.status_code == 201, response.text
    assert elapsed < 2, f"answered after {elapsed:.2f} s, the whole wait"
    assert response.headers[APPLIED] == "wait=2"
    assert response.headers["Location"] == f"{TRANSACTIONS}/{response.json()['transactionId']}"
    body = response.json()
    decision = body["decision"]
    assert decision["status"] == "approve"
    assert decision["reasons"] == []
    assert decision["rulesVersion"]
    assert_matches_stored(store, body["transactionId"], decision)
    assert_conforms(document, TRANSACTIONS, "POST", response)


def test_a_large_amount_is_reviewed_inline(
    decided: ServiceProcess, detector: RunningDetector, store: redis.Redis
) -> None:
    body = a_transaction(amount="15000.00")
    response, elapsed = timed(lambda: post(decided, body, Prefer="wait=2"))

    assert response.status_code == 201, response.text
    assert elapsed < 2, f"answered after {elapsed:.2f} s, the whole wait"
    assert response.headers[APPLIED] == "wait=2"
    decision = response.json()["decision"]
    assert decision["status"] == "review"
    assert decision["riskScore"] == 60
    assert rule_ids(decision) == ["large-amount"]
    reason = decision["reasons"][0]
    assert reason["alertType"] == "large_transaction_detected"
    assert reason["severity"] and reason["message"]
    assert_matches_stored(store, response.json()["transactionId"], decision)


def test_large_and_impossible_travel_is_declined_inline(
    decided: ServiceProcess, detector: RunningDetector, store: redis.Redis
) -> None:
    user = f"inline-{uuid.uuid4().hex[:12]}"
    start = datetime.now(UTC) - timedelta(seconds=30)
    first = post(
        decided,
        a_transaction(userId=user, location="New York", timestamp=start.isoformat()),
        Prefer="wait=2",
    )
    assert first.status_code == 201, first.text
    assert first.json()["decision"]["status"] == "approve"

    later = (start + timedelta(seconds=2)).isoformat()
    body = a_transaction(userId=user, amount="20000", location="Tokyo", timestamp=later)
    response, elapsed = timed(lambda: post(decided, body, Prefer="wait=2"))

    assert response.status_code == 201, response.text
    assert elapsed < 2, f"answered after {elapsed:.2f} s, the whole wait"
    decision = response.json()["decision"]
    assert decision["status"] == "decline", decision
    assert decision["riskScore"] >= 80
    assert sorted(rule_ids(decision)) == ["large-amount", "location-change"]
    assert_matches_stored(store, response.json()["transactionId"], decision)


def test_a_batch_gets_one_decision_per_item_in_order(
    decided: ServiceProcess,
    detector: RunningDetector,
    store: redis.Redis,
    document: dict[str, Any],
) -> None:
    items = [a_transaction(), a_transaction(amount="15000"), a_transaction(amount="3")]
    response, elapsed = timed(
        lambda: post(decided, {"transactions": items}, BATCH, Prefer="wait=2")
    )

    assert response.status_code == 201, response.text
    assert elapsed < 2, f"answered after {elapsed:.2f} s, the whole wait"
    assert response.headers[APPLIED] == "wait=2"
    body = response.json()
    assert body["count"] == 3
    assert [d["status"] for d in body["decisions"]] == ["approve", "review", "approve"]
    for transaction_id, decision in zip(body["transactionIds"], body["decisions"], strict=True):
        assert_matches_stored(store, transaction_id, decision)
    assert_conforms(document, BATCH, "POST", response)


def test_a_wait_over_ten_seconds_is_capped_at_ten(
    decided: ServiceProcess, detector: RunningDetector
) -> None:
    response = post(decided, a_transaction(), Prefer="wait=3600")

    assert response.status_code == 201, response.text
    assert response.headers[APPLIED] == "wait=10"
    assert response.json()["decision"]["status"] == "approve"


# --- nothing decides ------------------------------------------------------------------


def test_no_decision_within_the_wait_is_pending_and_still_accepted(
    undecided: ServiceProcess, store: redis.Redis, document: dict[str, Any]
) -> None:
    response, elapsed = timed(lambda: post(undecided, a_transaction(), Prefer="wait=1"))

    assert response.status_code == 201, response.text
    assert 1 <= elapsed < 3, f"answered after {elapsed:.2f} s"
    assert response.headers[APPLIED] == "wait=1"
    body = response.json()
    assert body["decision"] == {"status": "pending"}
    assert store.exists(keys.transaction(body["transactionId"]))
    assert status_of(undecided, body["transactionId"]) == "pending"
    assert_conforms(document, TRANSACTIONS, "POST", response)


def test_a_batch_without_decisions_is_pending_for_every_item(
    undecided: ServiceProcess, store: redis.Redis, document: dict[str, Any]
) -> None:
    items = [a_transaction(), a_transaction()]
    response, elapsed = timed(
        lambda: post(undecided, {"transactions": items}, BATCH, Prefer="wait=1")
    )

    assert response.status_code == 201, response.text
    assert 1 <= elapsed < 3, f"answered after {elapsed:.2f} s (one wait, not one per item)"
    body = response.json()
    assert body["decisions"] == [{"status": "pending"}] * 2
    assert all(store.exists(keys.transaction(t)) for t in body["transactionIds"])
    assert_conforms(document, BATCH, "POST", response)


@pytest.mark.parametrize(
    "prefer", ["wait=abc", "wait=-1", "wait=1.5", "wait", 'wait=""', "wait=", "respond-async"]
)
def test_a_bad_or_other_preference_is_ignored(
    undecided: ServiceProcess, store: redis.Redis, prefer: str
) -> None:
    response, elapsed = timed(lambda: post(undecided, a_transaction(), Prefer=prefer))

    assert response.status_code == 201, response.text
    assert APPLIED not in response.headers
    assert "decision" not in response.json()
    assert elapsed < 1
    assert store.exists(keys.transaction(response.json()["transactionId"]))


def test_wait_among_other_preferences_is_honoured(undecided: ServiceProcess) -> None:
    response = post(undecided, a_transaction(), Prefer='respond-async, WAIT = "1"; x=y')

    assert response.status_code == 201, response.text
    assert response.headers[APPLIED] == "wait=1"
    assert response.json()["decision"] == {"status": "pending"}


def test_without_prefer_the_201_is_unchanged(undecided: ServiceProcess) -> None:
    response = post(undecided, a_transaction())

    assert response.status_code == 201, response.text
    assert APPLIED not in response.headers
    assert set(response.json()) == {"status", "transactionId", "transaction"}


# --- the signal wakes the wait --------------------------------------------------------


def blocked_waits(store: redis.Redis) -> int:
    """Clients of the module's Redis blocked (in a blocking command) right now."""
    return sum(1 for client in store.client_list() if "b" in client["flags"])


def decide_as_the_detector(store: redis.Redis, transaction_id: str, status: DecisionStatus) -> None:
    decision = Decision(
        transactionId=transaction_id,
        status=status,
        riskScore=60,
        reasons=[
            Reason(
                ruleId="large-amount",
                alertType="large_transaction_detected",
                severity="high",
                score=60,
                message="large",
                details={"threshold": "10000"},
            )
        ],
        rulesVersion="test-version",
        evaluatedAt=datetime.now(UTC),
    )
    pipe = store.pipeline(transaction=False)
    pipe.set(keys.decision(transaction_id), decision.to_json(), nx=True)
    pipe.rpush(keys.decision_ready(transaction_id), 1)
    pipe.expire(keys.decision_ready(transaction_id), 60)
    pipe.execute()


class InBackground:
    """One request run in a thread; ``result`` waits for its response and duration."""

    def __init__(self, call: Callable[[], requests.Response]) -> None:
        self._answer: list[tuple[requests.Response, float]] = []
        self._thread = threading.Thread(target=lambda: self._answer.append(timed(call)))
        self._thread.start()

    def result(self, timeout: float = 30) -> tuple[requests.Response, float]:
        self._thread.join(timeout)
        assert self._answer, "the request did not finish"
        return self._answer[0]


def test_a_decision_made_during_the_wait_wakes_it(
    undecided: ServiceProcess, store: redis.Redis
) -> None:
    body = a_transaction(amount="15000")
    key = f"inline-{uuid.uuid4().hex}"
    request = InBackground(
        lambda: post(undecided, body, **{"Prefer": "wait=8", "Idempotency-Key": key})
    )
    wait_for(lambda: blocked_waits(store) == 1, timeout=10)
    transaction_id = stored_transaction_id(store, key)

    signalled = time.monotonic()
    decide_as_the_detector(store, transaction_id, "review")
    response, _ = request.result()
    woke_after = time.monotonic() - signalled

    assert response.status_code == 201, response.text
    assert woke_after < 4, f"woke {woke_after:.2f} s after the signal, not on it"
    assert response.json()["decision"] == {
        "status": "review",
        "riskScore": 60,
        "reasons": [
            {
                "ruleId": "large-amount",
                "alertType": "large_transaction_detected",
                "severity": "high",
                "score": 60,
                "message": "large",
            }
        ],
        "rulesVersion": "test-version",
    }
    assert store.llen(keys.decision_ready(transaction_id)) == 1, "the wake consumed the signal"


def test_a_replay_and_the_first_request_both_wake_and_agree(
    undecided: ServiceProcess, store: redis.Redis
) -> None:
    body = a_transaction()
    headers = {"Prefer": "wait=8", "Idempotency-Key": f"inline-{uuid.uuid4().hex}"}
    first = InBackground(lambda: post(undecided, body, **headers))
    wait_for(lambda: blocked_waits(store) == 1, timeout=10)
    replay = InBackground(lambda: post(undecided, body, **headers))
    wait_for(lambda: blocked_waits(store) == 2, timeout=10)
    transaction_id = stored_transaction_id(store, headers["Idempotency-Key"])
    record_key = keys.idempotency(scoped_key(headers["Idempotency-Key"]))
    stored = json.loads(stored_text(store, record_key))

    signalled = time.monotonic()
    decide_as_the_detector(store, transaction_id, "approve")
    (one, _), (two, _) = first.result(), replay.result()
    woke_after = time.monotonic() - signalled

    assert woke_after < 4, f"woke {woke_after:.2f} s after the signal, not on it"
    assert one.status_code == two.status_code == 201
    assert two.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in one.headers
    assert one.headers[APPLIED] == two.headers[APPLIED] == "wait=8"
    assert one.json() == two.json()
    assert one.json()["decision"]["status"] == "approve"
    assert "decision" not in json.loads(stored["body"]), "the stored body is the acceptance"


def test_a_replay_without_prefer_is_the_stored_response(undecided: ServiceProcess) -> None:
    body = a_transaction()
    key = f"inline-{uuid.uuid4().hex}"
    first = post(undecided, body, **{"Prefer": "wait=0", "Idempotency-Key": key})
    replay = post(undecided, body, **{"Idempotency-Key": key})

    assert first.status_code == replay.status_code == 201
    assert first.headers[APPLIED] == "wait=0"
    assert first.json()["decision"] == {"status": "pending"}
    assert APPLIED not in replay.headers
    assert replay.json() == {k: v for k, v in first.json().items() if k != "decision"}


# --- test-client.py --wait --------------------------------------------------------------


def load_test_client() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "test-client.py"
    spec = importlib.util.spec_from_file_location("test_client_script", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_test_client_prints_the_inline_decision(
    decided: ServiceProcess, undecided: ServiceProcess, detector: RunningDetector
) -> None:
    client = load_test_client()
    reviewing = client.Api(decided.url, "http://unused", None, 5.0, wait=2)
    waiting = client.Api(undecided.url, "http://unused", None, 5.0, wait=0)
    plain = client.Api(undecided.url, "http://unused", None, 5.0)

    large = reviewing.post_transaction(a_transaction(amount="15000.00"))
    pending = waiting.post_transaction(a_transaction())
    ignored = plain.post_transaction(a_transaction())

    assert client.describe_decision(large) == "decision: review (risk 60) large-amount"
    assert client.describe_decision(pending) == "decision: pending (not made within wait=0)"
    assert client.describe_decision(ignored).startswith("decision: none inline")
    assert client.parse_args(["--test", "large", "--wait", "2"]).wait == 2
    assert client.parse_args(["--test", "large"]).wait is None
