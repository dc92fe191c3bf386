"""The alert-service's consumer and store against a real broker and a real Redis:
each alert stored once, bounded lists, dead letters, offsets committed only after storing,
and a Redis outage that stalls (never skips) the work and heals by itself."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from alert_service import create_app
from alert_service.store import AlertStore, StoreBounds
from fraud_common import keys
from fraud_common.background import registered
from fraud_common.kafka.consumer_loop import ConsumerLoop
from tests.conftest import TopicNames
from tests.support.alert_app import (
    AlertPublisher,
    alert_settings,
    committed_offsets,
    headers_of,
    json_of,
    next_offsets,
    running,
)
from tests.support.factories import make_alert
from tests.support.kafka_reading import read_topic
from tools.local_services import RedisServer, wait_for

pytestmark = pytest.mark.integration

PARTITIONS = 5


class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def alert_log() -> Iterator[ListHandler]:
    handler = ListHandler()
    logger = logging.getLogger("alert_service.alerts")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


def _holds_for(condition: Callable[[], bool], *, seconds: float) -> bool:
    """True when ``condition`` stays true for ``seconds`` (checking a negative needs time)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not condition():
            return False
        time.sleep(0.2)
    return condition()


def _stats_total(client: redis.Redis) -> int:
    return sum(int(client.get(k) or 0) for k in client.scan_iter("fraud:stats:alerts:*"))


def test_the_same_alert_stored_twice_is_one_alert(redis_client: redis.Redis) -> None:
    store = AlertStore(redis_client)
    alert = make_alert("u-dup")

    first = store.store([alert, alert])  # twice in one batch
    again = store.store([alert])  # and redelivered later

    assert [s.new for s in first + again] == [True, False, False]
    assert first[0].stream_id == first[1].stream_id == again[0].stream_id
    assert redis_client.xlen(keys.ALERTS_STREAM) == 1
    assert redis_client.zcard(keys.ALERTS_RECENT) == 1
    assert redis_client.zcard(keys.alerts_by_user("u-dup")) == 1
    assert _stats_total(redis_client) == 1
    assert store.get(alert.alertId) == alert.model_dump(mode="json", exclude_none=True)
    assert store.stream_id_of(alert.alertId) == first[0].stream_id
    entry: Any = redis_client.xrange(keys.ALERTS_STREAM)[0]  # type: ignore[index]
    assert entry[0] == first[0].stream_id
    assert entry[1]["alertId"] == alert.alertId
    assert entry[1]["alert"] == alert.to_json()


def test_recent_lists_keep_the_newest_within_their_bounds(redis_client: redis.Redis) -> None:
    store = AlertStore(redis_client, StoreBounds(recent_max=5, user_max=3))
    alerts = [make_alert("u-a" if i % 2 else "u-b") for i in range(10)]
    store.store(alerts[:4])  # several batches, several alerts per millisecond
    store.store(alerts[4:])

    newest_first = [a.alertId for a in reversed(alerts)]
    assert redis_client.zcard(keys.ALERTS_RECENT) == 5
    assert [a["alertId"] for a in store.recent(limit=1000)] == newest_first[:5]
    user_a = [
        a for a in newest_first if a in {x.alertId for x in alerts if x.transaction.userId == "u-a"}
    ]
    assert [a["alertId"] for a in store.recent(user_id="u-a", limit=1000)] == user_a[:3]
    assert redis_client.ttl(keys.alerts_by_user("u-a")) > 0
    assert [a["alertId"] for a in store.recent(limit=2)] == newest_first[:2]


def test_consumer_stores_each_alert_once_and_dead_letters_bad_messages(
    kafka_bootstrap: str,
    redis_url: str,
    redis_client: redis.Redis,
    topics: TopicNames,
    alert_log: ListHandler,
) -> None:
    settings = alert_settings(kafka_bootstrap, redis_url, topics)
    app = create_app(settings)
    publisher = AlertPublisher(kafka_bootstrap, topics.alerts)
    first, last = (
        make_alert("u-1"),
        make_alert("u-1", alert_type="unusual_location_change_detected"),
    )
    try:
        with running(app):
            published = publisher.publish([first, first])  # a redelivery
            published += publisher.publish_raw(
                [
                    (b"not json at all", "u-1"),
                    (b'{"alertId": "x", "alertType": "large_transaction_detected"}', "u-1"),
                    (b'{"alertId": "\xff\xfe"}', "u-1"),
                ]
            )
            published += publisher.publish([last])  # same key, so after the others on its partition
            store = app.extensions["alert_service.store"]
            wait_for(lambda: store.get(last.alertId) is not None, timeout=30, what="last alert")

            assert redis_client.xlen(keys.ALERTS_STREAM) == 2
            assert redis_client.zrevrange(keys.ALERTS_RECENT, 0, -1) == [
                last.alertId,
                first.alertId,
            ]
            assert redis_client.zcard(keys.alerts_by_user("u-1")) == 2
            assert _stats_total(redis_client) == 2
            readable = [r.getMessage() for r in alert_log.records if r.levelno >= logging.INFO]
            assert len(readable) == 2
            assert readable[0].startswith("ALERT large_transaction_detected [high] user u-1:")
            assert "25000.00 USD in Tokyo" in readable[0]
            assert "threshold=10000" in readable[0]

            dead = read_topic(kafka_bootstrap, topics.alerts_dlq, expect=3, timeout=30)
            assert len(dead) == 3
            for message in dead:
                headers = headers_of(message)
                assert headers["dlq-error"]
                assert headers["dlq-original-topic"] == topics.alerts
                assert int(headers["dlq-original-offset"]) >= 0
                assert "dlq-original-partition" in headers
            assert dead[0].value() == b"not json at all"
            assert "not a valid alert" in headers_of(dead[1])["dlq-error"]

            # Everything was stored, so everything gets committed (librdkafka, every second).
            wait_for(
                lambda: (
                    committed_offsets(
                        kafka_bootstrap, settings.consumer_group, topics.alerts, PARTITIONS
                    )
                    == next_offsets(published, PARTITIONS)
                ),
                timeout=30,
                what="offsets committed",
            )
            health = app.test_client().get("/health")
            assert health.status_code == 200, health.data
            assert json_of(health)["consumer"]["processed"] == 3
            assert json_of(health)["consumer"]["deadLettered"] == 3
    finally:
        publisher.close()


def test_nothing_is_committed_while_redis_is_down_and_it_resumes_by_itself(
    kafka_bootstrap: str, topics: TopicNames
) -> None:
    with RedisServer(appendonly=True) as server:
        settings = alert_settings(kafka_bootstrap, server.url, topics, redis_socket_timeout=0.5)
        app = create_app(settings)
        client = app.test_client()
        store = app.extensions["alert_service.store"]
        publisher = AlertPublisher(kafka_bootstrap, topics.alerts)
        committed = lambda: committed_offsets(  # noqa: E731
            kafka_bootstrap, settings.consumer_group, topics.alerts, PARTITIONS
        )
        try:
            with running(app):
                warmup = make_alert("u-warm")
                published = publisher.publish([warmup])
                wait_for(lambda: store.get(warmup.alertId) is not None, timeout=30, what="warm-up")
                before = next_offsets(published, PARTITIONS)
                wait_for(lambda: committed() == before, timeout=30, what="warm-up committed")

                server.stop()
                during = [make_alert(f"u-down-{i}") for i in range(6)]
                published += publisher.publish(during)
                (loop,) = [t.target for t in registered(app) if t.name == "alert-consumer"]
                assert isinstance(loop, ConsumerLoop)
                wait_for(lambda: loop.status.state == "failing", timeout=30, what="loop failing")
                wait_for(lambda: client.get("/health").status_code == 503, timeout=10, what="503")
                body = json_of(client.get("/health"))
                assert body["status"] == "unhealthy"
                assert body["redis"] == "disconnected"
                assert body["consumer"]["healthy"] is False
                # librdkafka commits stored offsets every second: watch for two seconds
                # that nothing moves while the batch cannot be stored.
                assert _holds_for(lambda: committed() == before, seconds=2.0)
                assert loop.status.state == "failing"

                server.start()
                wait_for(
                    lambda: all(store.get(a.alertId) is not None for a in during),
                    timeout=30,
                    what="alerts stored after redis came back",
                )
                wait_for(
                    lambda: committed() == next_offsets(published, PARTITIONS),
                    timeout=30,
                    what="offsets committed after recovery",
                )
                wait_for(lambda: client.get("/health").status_code == 200, timeout=30, what="200")
                assert len(store.recent(limit=100)) == 7
        finally:
            publisher.close()


def test_an_alert_failing_in_the_store_is_dead_lettered_and_the_others_are_stored(
    kafka_bootstrap: str,
    redis_url: str,
    redis_client: redis.Redis,
    topics: TopicNames,
) -> None:
    """One user's list key is not a sorted set (a bug, an operator's mistake): storing that
    user's alert fails in the store's script; the loop finds it among its batch, sets it
    aside with the reason, and the alerts around it are stored."""
    redis_client.set(keys.alerts_by_user("u-broken"), "not a sorted set")
    settings = alert_settings(kafka_bootstrap, redis_url, topics)
    app = create_app(settings)
    publisher = AlertPublisher(kafka_bootstrap, topics.alerts)
    before, broken, after = make_alert("u-fine"), make_alert("u-broken"), make_alert("u-fine-2")
    with running(app):
        publisher.publish([before, broken, after])
        store = app.extensions["alert_service.store"]
        wait_for(
            lambda: store.get(before.alertId) is not None and store.get(after.alertId) is not None,
            timeout=30,
            what="the healthy alerts stored",
        )
        (dead,) = read_topic(kafka_bootstrap, topics.alerts_dlq, expect=1, timeout=30)
        assert json.loads(dead.value() or b"") == json.loads(broken.to_json())
        assert "WRONGTYPE" in headers_of(dead)["dlq-error"]
        assert store.get(broken.alertId) is None
        health = app.test_client().get("/health")
        assert health.status_code == 200, health.data
        assert json_of(health)["consumer"]["deadLettered"] == 1
