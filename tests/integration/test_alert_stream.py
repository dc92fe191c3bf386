"""The live stream (``GET /api/v1/alerts/stream``) over real HTTP, fed through the real
broker and Redis: latency, resume with Last-Event-ID, many subscribers, filter, heartbeat.

One app serves the whole module (its consumer joins the group once); every test uses its
own user ids, so tests do not see each other's alerts through the userId filter.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
import requests

from alert_service import create_app
from alert_service.store import AlertStore
from alert_service.stream import FEED_EXTENSION, STREAM_CLIENT_NAME, AlertFeed
from fraud_common.kafka.topics import contract_topics, ensure_topics
from fraud_common.schemas import Alert
from tests.conftest import TopicNames
from tests.support.alert_app import AlertPublisher, alert_settings, running, served
from tests.support.alert_sse import SseSubscriber
from tests.support.factories import make_alert
from tools.local_services import wait_for

pytestmark = pytest.mark.integration

HEARTBEAT_SECONDS = 0.5


@dataclass(frozen=True)
class Live:
    url: str
    publisher: AlertPublisher
    store: AlertStore
    feed: AlertFeed
    redis: redis.Redis

    def stream(self, query: str = "", headers: dict[str, str] | None = None) -> SseSubscriber:
        return SseSubscriber(f"{self.url}/api/v1/alerts/stream{query}", headers=headers or {})

    def wait_stored(self, alerts: list[Alert]) -> None:
        wait_for(
            lambda: all(self.store.get(a.alertId) is not None for a in alerts),
            timeout=30,
            what=f"{len(alerts)} alerts stored",
        )


@pytest.fixture(scope="module")
def live(kafka_bootstrap: str, redis_server_url: str) -> Iterator[Live]:
    suffix = uuid.uuid4().hex[:10]
    topics = TopicNames(f"transactions-{suffix}", f"fraud-alerts-{suffix}")
    ensure_topics(kafka_bootstrap, contract_topics(topics.transactions, topics.alerts))
    settings = alert_settings(
        kafka_bootstrap, redis_server_url, topics, sse_heartbeat_seconds=HEARTBEAT_SECONDS
    )
    app = create_app(settings)
    publisher = AlertPublisher(kafka_bootstrap, topics.alerts)
    try:
        with running(app), served(app) as url:
            result = Live(
                url,
                publisher,
                app.extensions["alert_service.store"],
                app.extensions[FEED_EXTENSION],
                app.extensions["alert_service.redis"],
            )
            warmup = make_alert(f"warm-{suffix}")
            publisher.publish([warmup])
            result.wait_stored([warmup])  # the consumer has joined and owns the partitions
            yield result
    finally:
        publisher.close()


def _user() -> str:
    return f"u-{uuid.uuid4().hex[:12]}"


def test_a_subscriber_gets_an_alert_within_one_second_of_its_publication(live: Live) -> None:
    user = _user()
    with live.stream(f"?userId={user}") as sub:
        sub.wait_connected()
        assert sub.status == 200
        assert sub.response_headers["Content-Type"].startswith("text/event-stream")
        assert sub.response_headers["Cache-Control"] == "no-cache"
        assert sub.response_headers["X-Accel-Buffering"] == "no"

        latencies = []
        for i in range(5):
            alert = make_alert(user, transaction_id=f"{user}-t{i}")
            (published,) = live.publisher.publish([alert])
            event = sub.wait_events(i + 1, timeout=10)[i]
            assert (event.event, event.id) == ("alert", alert.alertId)
            assert event.json() == alert.model_dump(mode="json", exclude_none=True)
            latencies.append(event.received_at - published.sent_at)

    print(
        "SSE latency from publish to subscriber (s): "
        + ", ".join(f"{x:.3f}" for x in latencies)
        + f"; max {max(latencies):.3f}"
    )
    assert max(latencies) < 1.0, latencies  # issue 4: within 1 s of its publication


def test_a_reconnect_with_last_event_id_gets_exactly_the_missed_alerts(live: Live) -> None:
    user, other = _user(), _user()
    seen = [make_alert(user, transaction_id=f"{user}-seen{i}") for i in range(3)]
    missed = [make_alert(user, transaction_id=f"{user}-missed{i}") for i in range(4)]
    noise = [make_alert(other, transaction_id=f"{other}-n{i}") for i in range(3)]
    later = make_alert(user, transaction_id=f"{user}-later")

    with live.stream(f"?userId={user}") as first:
        first.wait_connected()
        live.publisher.publish(seen)
        assert [e.id for e in first.wait_events(3)] == [a.alertId for a in seen]

    # While nobody listens: the user's alerts, interleaved with another user's.
    live.publisher.publish([missed[0], noise[0], missed[1], noise[1], missed[2], missed[3]])
    live.publisher.publish([noise[2]])
    live.wait_stored(missed + noise)

    resume = {"Last-Event-ID": seen[-1].alertId}
    with live.stream(f"?userId={user}", headers=resume) as again:
        again.wait_events(4)
        live.publisher.publish([later])
        events = again.wait_events(5)
        assert any(c.startswith("replaying alerts stored after") for c in again.comments)
    assert [e.id for e in events] == [a.alertId for a in [*missed, later]]

    # The query parameter does the same for clients that cannot set the header.
    with live.stream(f"?userId={user}&lastEventId={missed[1].alertId}") as by_query:
        events = by_query.wait_events(3)
    assert [e.id for e in events] == [a.alertId for a in [missed[2], missed[3], later]]


def test_an_unknown_last_event_id_starts_live_and_says_so(live: Live) -> None:
    user = _user()
    before = make_alert(user, transaction_id=f"{user}-before")
    live.publisher.publish([before])
    live.wait_stored([before])
    with live.stream(f"?userId={user}", headers={"Last-Event-ID": "no-such-alert"}) as sub:
        sub.wait_connected()
        assert "unknown Last-Event-ID no-such-alert: starting live" in sub.comments
        after = make_alert(user, transaction_id=f"{user}-after")
        live.publisher.publish([after])
        assert [e.id for e in sub.wait_events(1)] == [after.alertId]


def test_fifty_concurrent_subscribers_all_receive_every_alert(live: Live) -> None:
    user = _user()
    alerts = [make_alert(user, transaction_id=f"{user}-{i}") for i in range(20)]
    expected = [a.alertId for a in alerts]
    # The cap (SSE_MAX_SUBSCRIBERS, 50) counts the earlier tests' streams until the server
    # noticed they are gone.
    wait_for(lambda: live.feed.open_subscriptions == 0, timeout=10, what="earlier streams gone")
    # Half filter on the user, half take everything (and pick ours out).
    subs = [live.stream(f"?userId={user}" if i % 2 else "") for i in range(50)]
    for sub in subs:
        sub.start()
    try:
        for sub in subs:
            sub.wait_connected()
        assert [sub.status for sub in subs] == [200] * 50
        live.publisher.publish(alerts[:10])
        live.publisher.publish(alerts[10:])
        for sub in subs:
            sub.wait_until(
                lambda s=sub: sum(e.id in expected for e in s.events) >= len(expected),  # type: ignore[misc]
                timeout=30,
                what="every alert at every subscriber",
            )
        for sub in subs:
            assert [e.id for e in sub.events if e.id in expected] == expected
        assert _stream_connections(live) >= 50
    finally:
        for sub in subs:
            sub.close()
    # The server notices a gone client at its next write (a heartbeat at the latest) and
    # releases the subscription's Redis connection.
    wait_for(lambda: live.feed.open_subscriptions == 0, timeout=10, what="subscriptions closed")
    wait_for(lambda: _stream_connections(live) == 0, timeout=10, what="connections closed")


def _stream_connections(live: Live) -> int:
    clients: Any = live.redis.client_list()
    return sum(c.get("name") == STREAM_CLIENT_NAME for c in clients)


def test_the_user_filter_passes_only_that_users_alerts(live: Live) -> None:
    user, other = _user(), _user()
    mine = [make_alert(user, transaction_id=f"{user}-{i}") for i in range(3)]
    theirs = [make_alert(other, transaction_id=f"{other}-{i}") for i in range(3)]
    with live.stream(f"?userId={user}") as filtered, live.stream() as everything:
        filtered.wait_connected()
        everything.wait_connected()
        live.publisher.publish([theirs[0], mine[0], theirs[1], mine[1], theirs[2], mine[2]])
        ids = {a.alertId for a in mine + theirs}
        everything.wait_until(
            lambda: sum(e.id in ids for e in everything.events) == 6, timeout=30, what="all six"
        )
        live.wait_stored(mine + theirs)
        assert [e.id for e in filtered.wait_events(3)] == [a.alertId for a in mine]
    assert {e.json()["transaction"]["userId"] for e in filtered.events} == {user}


def test_an_idle_stream_sends_heartbeat_comments(live: Live) -> None:
    with live.stream(f"?userId={_user()}") as sub:
        sub.wait_until(
            lambda: sub.comments.count("heartbeat") >= 2, timeout=10, what="two heartbeats"
        )
        assert sub.events == []


@pytest.mark.parametrize(
    ("query", "headers", "field"),
    [
        ("?userId=bad%20user", {}, "userId"),
        ("?userId=" + "x" * 65, {}, "userId"),
        ("", {"Last-Event-ID": "x" * 200}, "Last-Event-ID"),
    ],
)
def test_bad_stream_parameters_are_a_json_400(
    live: Live, query: str, headers: dict[str, str], field: str
) -> None:
    response = requests.get(f"{live.url}/api/v1/alerts/stream{query}", headers=headers, timeout=10)
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert [d["field"] for d in error["details"]] == [field]
