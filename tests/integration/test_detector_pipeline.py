"""The detector end to end: real Tansu, real Redis, the app's own consumer loop.

One detector (one group join) serves the module; each test uses its own users. The
Redis is this module's own server, so a test can stop and restart it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import cast

import pytest
import redis
import requests
from confluent_kafka import Message

from fraud_common import keys
from fraud_common.schemas import Alert, Decision, Transaction, alert_id
from tests.conftest import TopicNames
from tests.support.detector_factories import transaction
from tests.support.detector_running import (
    RunningDetector,
    TopicWriter,
    committed_offsets,
    detector_settings,
    new_group,
    read_to_end,
    serve,
    start_detector,
)
from tests.support.kafka_reading import read_topic
from tools.local_services import RedisServer, wait_for

pytestmark = pytest.mark.integration

LARGE = "large_transaction_detected"
RAPID = "multiple_rapid_transactions_detected"
LOCATION = "unusual_location_change_detected"


@pytest.fixture(scope="module")
def detector(
    kafka_bootstrap: str, redis_server: RedisServer, module_topics: TopicNames
) -> Iterator[RunningDetector]:
    running = start_detector(
        detector_settings(
            kafka_bootstrap,
            redis_server.url,
            module_topics,
            new_group(),
            redis_socket_timeout=1.0,
            consumer_stall_seconds=10.0,
        )
    )
    yield running
    running.stop()


@pytest.fixture(scope="module")
def base_url(detector: RunningDetector) -> Iterator[str]:
    with serve(detector.app) as url:
        yield url


def _user(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def _decisions(store: redis.Redis, txns: list[Transaction], timeout: float = 30) -> list[Decision]:
    def all_there() -> bool:
        return all(store.exists(keys.decision(t.transactionId)) for t in txns)

    wait_for(all_there, timeout=timeout, what=f"{len(txns)} decisions")
    return [
        Decision.model_validate_json(store.get(keys.decision(t.transactionId)) or "") for t in txns
    ]


def _alerts_of(messages: list[Message], users: set[str]) -> list[tuple[Message, Alert]]:
    found = []
    for message in messages:
        alert = Alert.model_validate_json(message.value() or b"")
        if alert.transaction.userId in users:
            found.append((message, alert))
    return found


def _headers(message: Message) -> dict[str, str]:
    pairs = cast(list[tuple[str, bytes | None]], message.headers() or [])
    return {k: (v or b"").decode() for k, v in pairs}


def _all_alerts(bootstrap: str, topics: TopicNames) -> list[Message]:
    return read_to_end(bootstrap, topics.alerts)


def _all_committed(bootstrap: str, detector: RunningDetector, writer: TopicWriter) -> bool:
    group = detector.settings.consumer_group
    return committed_offsets(bootstrap, group, writer.topic, 10) == writer.end_offsets(10)


def _base() -> datetime:
    return datetime.now(UTC).replace(microsecond=0) - timedelta(hours=12)


def test_the_three_rules_end_to_end(
    kafka_bootstrap: str,
    module_topics: TopicNames,
    detector: RunningDetector,
    store,
    writer: TopicWriter,
) -> None:
    t0 = _base()
    large, rapid, loc, calm, lost = (_user(n) for n in ("large", "rapid", "loc", "calm", "lost"))
    at = lambda s: t0 + timedelta(seconds=s)  # noqa: E731
    txns = [
        transaction(user=large, amount="15000", at=at(0)),
        transaction(user=large, amount="10000", at=at(100)),  # exactly the limit: no
        transaction(user=large, amount="9300", currency="EUR", at=at(200)),  # 10,044 USD
        # 7 within 30 s: the 6th and 7th alert; after a 31 s gap 5 more do not.
        *[transaction(user=rapid, at=at(s)) for s in (0, 1, 2, 3, 4, 5, 6)],
        *[transaction(user=rapid, at=at(s)) for s in (37, 38, 39, 40, 41)],
        transaction(user=loc, location="New York", at=at(0)),
        transaction(user=loc, location="Tokyo", at=at(2)),  # impossible
        transaction(user=calm, location="New York", at=at(0)),
        transaction(user=calm, location="Newark", at=at(60)),  # close by
        transaction(user=calm, location="London", at=at(60 + 10 * 3600)),  # 10 h later
        transaction(user=lost, location="Narnia Springs", at=at(0)),
        transaction(user=lost, location="New York", at=at(600)),  # unresolvable: by name
    ]
    writer.send(txns)
    decisions = _decisions(store, txns)

    expected = {
        (txns[0].transactionId, LARGE),
        (txns[2].transactionId, LARGE),
        (txns[8].transactionId, RAPID),
        (txns[9].transactionId, RAPID),
        (txns[16].transactionId, LOCATION),
        (txns[21].transactionId, LOCATION),
    }
    alerts = _alerts_of(
        _all_alerts(kafka_bootstrap, module_topics), {large, rapid, loc, calm, lost}
    )
    assert {(a.transaction.transactionId, a.alertType) for _, a in alerts} == expected
    assert len(alerts) == len(expected)
    for message, alert in alerts:
        assert message.key() == alert.transaction.userId.encode()
        assert _headers(message)["alert-id"] == alert.alertId
        assert alert.alertId == alert_id(alert.transaction.transactionId, alert.alertType)
        assert alert.message
    by_txn = {a.transaction.transactionId: a for _, a in alerts}
    assert [by_txn[txns[i].transactionId].details["count"] for i in (8, 9)] == [6, 7]
    assert by_txn[txns[2].transactionId].details["amount_usd"] == "10044.00"
    assert by_txn[txns[16].transactionId].details["previous_location"] == "New York"
    assert by_txn[txns[21].transactionId].details["method"] == "name"

    for txn, decision in zip(txns, decisions, strict=True):
        fired = sorted(t for i, t in expected if i == txn.transactionId)
        assert decision.transactionId == txn.transactionId
        assert sorted(a.alertType for a in decision.alerts()) == fired
        assert decision.status == ("review" if fired else "approve")
        assert (decision.riskScore > 0) == bool(fired)
        assert 0 < store.ttl(keys.decision(txn.transactionId)) <= 7 * 24 * 3600


def test_a_replayed_transaction_gives_one_alert_id_and_counts_once(
    kafka_bootstrap: str,
    module_topics: TopicNames,
    detector: RunningDetector,
    store,
    writer: TopicWriter,
) -> None:
    t0 = _base()
    user = _user("replay")
    five = [transaction(user=user, at=t0 + timedelta(seconds=s)) for s in range(5)]
    big = transaction(user=_user("replay-big"), amount="50000", at=t0)
    # The fifth and the large one are delivered twice in the same batch ...
    writer.send([*five, five[4], big, big])
    _decisions(store, [*five, big])
    # ... and the large one once more in a later batch.
    before = detector.status.processed
    writer.send([big])
    wait_for(lambda: detector.status.processed > before, timeout=30, what="the replay")
    sixth = transaction(user=user, at=t0 + timedelta(seconds=5))
    writer.send([sixth])
    _decisions(store, [sixth])

    alerts = [a for _, a in _alerts_of(_all_alerts(kafka_bootstrap, module_topics), {user})]
    assert [(a.transaction.transactionId, a.details["count"]) for a in alerts] == [
        (sixth.transactionId, 6)  # not 7: the replayed fifth counted once
    ]
    big_alerts = [
        a for _, a in _alerts_of(_all_alerts(kafka_bootstrap, module_topics), {big.userId})
    ]
    assert len(big_alerts) >= 1
    assert {a.alertId for a in big_alerts} == {alert_id(big.transactionId, LARGE)}
    assert len({a.to_json() for a in big_alerts}) == 1  # same timestamp, same everything


def test_bad_messages_go_to_the_dead_letter_topic_and_later_ones_are_processed(
    kafka_bootstrap: str,
    module_topics: TopicNames,
    detector: RunningDetector,
    store,
    writer: TopicWriter,
) -> None:
    good = json.loads(transaction().to_json())
    bad = [
        b"\xff\xfe not utf-8",
        b"{not json",
        json.dumps({"userId": "u-1", "amount": "10"}).encode(),
        json.dumps({**good, "amount": "abc"}).encode(),
    ]
    after = transaction(user=_user("after-dlq"))
    writer.send([*bad, after])
    _decisions(store, [after])

    dead = read_topic(kafka_bootstrap, module_topics.transactions_dlq, expect=len(bad))
    assert sorted(m.value() or b"" for m in dead) == sorted(bad)
    reasons = {}
    for message in dead:
        headers = _headers(message)
        assert headers["dlq-original-topic"] == module_topics.transactions
        assert 0 <= int(headers["dlq-original-partition"]) < 10
        assert int(headers["dlq-original-offset"]) >= 0
        reasons[message.value()] = headers["dlq-error"]
    assert "UTF-8" in reasons[bad[0]]
    assert "not valid JSON" in reasons[bad[1]]
    assert "transactionId is required" in reasons[bad[2]]
    assert "amount" in reasons[bad[3]]
    assert detector.status.dead_lettered >= len(bad)


def test_offsets_are_committed_after_processing(
    kafka_bootstrap: str,
    module_topics: TopicNames,
    detector: RunningDetector,
    store,
    writer: TopicWriter,
) -> None:
    txns = [transaction(user=_user("commit")) for _ in range(20)]
    writer.send(txns)
    _decisions(store, txns)
    wait_for(
        lambda: _all_committed(kafka_bootstrap, detector, writer),
        timeout=20,
        what="commits up to the end of every partition",
    )


def test_health_over_http_is_200_while_running(base_url: str) -> None:
    response = requests.get(f"{base_url}/health", timeout=10)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "healthy"
    assert (body["redis"], body["kafka"]) == ("connected", "connected")
    assert body["consumer"]["healthy"] is True
    assert body["consumer"]["state"] in ("running", "starting")
    missing = requests.get(f"{base_url}/nope", timeout=10)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"


def _health(base_url: str) -> tuple[int, dict]:
    response = requests.get(f"{base_url}/health", timeout=10)
    return response.status_code, response.json()


def test_nothing_is_committed_while_redis_is_down_and_it_resumes(
    kafka_bootstrap: str,
    module_topics: TopicNames,
    detector: RunningDetector,
    redis_server: RedisServer,
    store,
    base_url: str,
    writer: TopicWriter,
) -> None:
    group = detector.settings.consumer_group
    first = transaction(user=_user("outage"))
    writer.send([first])
    _decisions(store, [first])
    wait_for(
        lambda: _all_committed(kafka_bootstrap, detector, writer),
        timeout=20,
        what="everything so far committed",
    )
    committed = committed_offsets(kafka_bootstrap, group, writer.topic, 10)

    redis_server.stop()
    t0 = _base()
    user = _user("outage")
    during = [
        transaction(user=user, location="New York", amount="20000", at=t0),
        transaction(user=user, location="Tokyo", at=t0 + timedelta(seconds=2)),
    ]
    writer.send(during)
    failures = detector.status.failures
    wait_for(lambda: detector.status.failures >= failures + 3, timeout=30, what="3 failed tries")
    assert committed_offsets(kafka_bootstrap, group, writer.topic, 10) == committed
    wait_for(lambda: _health(base_url)[0] == 503, timeout=10, what="health 503")
    body = _health(base_url)[1]
    assert body["status"] == "unhealthy"
    assert body["redis"] == "disconnected"
    assert body["consumer"]["healthy"] is False
    assert body["consumer"]["state"] == "failing"

    redis_server.start(port=redis_server.port)
    decisions = _decisions(store, during)
    assert [sorted(a.alertType for a in d.alerts()) for d in decisions] == [[LARGE], [LOCATION]]
    wait_for(
        lambda: _all_committed(kafka_bootstrap, detector, writer),
        timeout=20,
        what="commits after recovery",
    )
    wait_for(lambda: _health(base_url)[0] == 200, timeout=15, what="health 200 again")


def test_health_is_503_once_the_loop_is_dead(detector: RunningDetector, base_url: str) -> None:
    assert _health(base_url)[0] == 200
    detector.thread.stop()
    assert not detector.thread.alive
    wait_for(lambda: _health(base_url)[0] == 503, timeout=10, what="health 503")
    body = _health(base_url)[1]
    assert body["consumer"]["healthy"] is False
    assert body["consumer"]["state"] == "stopped"
