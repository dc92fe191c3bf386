"""The dashboard in a real headless Chromium against the real alert-service.

The alert-service app runs its consumer on the session's Tansu broker (uuid topics) and
stores into the test's Redis, served over real HTTP; alerts are published to Kafka as
the detector would. The page must show them live, newest first, count them per type,
chart the per-second counts, filter by user, and load nothing from outside its origin
(its Content-Security-Policy turns any such attempt into a logged error, asserted empty).
The service runs with ``API_KEYS``: the page asks for the key once (a wrong one is
refused and asked again), keeps it for the tab (a reload does not ask again) and sends
it with every request, the live stream included.
The screenshot lands in ``artifacts/dashboard.png``. The other tests check the stats
endpoint and the page's assets on the dashboard blueprint alone (no browser needed).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
import requests
from flask import Flask
from flask.testing import FlaskClient

from alert_service import api, create_app, dashboard
from fraud_common import keys
from fraud_common.api_keys import ApiKeys
from fraud_common.schemas import Alert
from tests.browser.chromium import Chromium, find_chromium
from tests.conftest import TopicNames
from tests.support.alert_app import AlertPublisher, alert_settings, running, served
from tests.support.factories import make_alert
from tools.local_services import wait_for

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
TX_PER_SECOND = 40
ALERTS_PER_SECOND = 1
STATS_SPAN = (-400, 120)  # seconds around now that the seeded per-second counts cover

FEED_IDS = "[...document.querySelectorAll('#feed li')].map(li => li.dataset.alertId)"
KEY = "dashboard-test-key"
HEADERS = {"X-API-Key": KEY}
LIVE = "document.getElementById('status').dataset.state === 'live'"
KEY_FORM_SHOWN = "!document.getElementById('key-form').hidden"


def type_count(alert_type: str) -> str:
    return (
        f"document.querySelector('#types li[data-type=\"{alert_type}\"] .type-count')?.textContent"
    )


@pytest.fixture
def browser() -> Iterator[Chromium]:
    binary = find_chromium()
    if binary is None:
        pytest.skip(
            "no Chromium installed: the dashboard test needs headless Chromium "
            "(apt-get install chromium, or set CHROMIUM=/path/to/chrome)"
        )
    with Chromium(binary, width=1440, height=1000) as chromium:
        yield chromium


@pytest.fixture
def dashboard_url(kafka_bootstrap: str, redis_url: str, topics: TopicNames) -> Iterator[str]:
    """The real alert-service (consumer loop running) served over HTTP."""
    app = create_app(alert_settings(kafka_bootstrap, redis_url, topics, api_keys=f"{KEY},other"))
    with running(app), served(app) as base_url:
        yield base_url


@pytest.fixture
def publisher(kafka_bootstrap: str, topics: TopicNames) -> Iterator[AlertPublisher]:
    publisher = AlertPublisher(kafka_bootstrap, topics.alerts)
    yield publisher
    publisher.close()


def large(user_id: str, amount: str = "25000.00", currency: str = "USD") -> Alert:
    return make_alert(
        user_id,
        "large_transaction_detected",
        amount=amount,
        currency=currency,
        details={"threshold": 10000},
    )


def rapid(user_id: str, count: int = 6) -> Alert:
    return make_alert(
        user_id,
        "multiple_rapid_transactions_detected",
        amount="19.99",
        location="Chicago",
        severity="medium",
        details={"count": count, "time_window": 30, "threshold_count": 5, "threshold_time": 30},
    )


def travel(user_id: str) -> Alert:
    return make_alert(
        user_id,
        "unusual_location_change_detected",
        amount="120.00",
        currency="JPY",
        location="Tokyo",
        severity="critical",
        details={
            "previous_location": "New York",
            "current_location": "Tokyo",
            "distance_km": 10838.5,
        },
    )


def seed_stats(client: redis.Redis, now: int) -> None:
    """Per-second counts as the detector (transactions) and the store (alerts) write them:
    constant rates, so every 5-minute window of the page sums to a known number. The
    alerts are added with INCRBY so the store's own counts add on top."""
    seconds = range(now + STATS_SPAN[0], now + STATS_SPAN[1])
    pipe = client.pipeline(transaction=False)
    pipe.mset({keys.stats_transactions(s): TX_PER_SECOND for s in seconds})
    for s in seconds:
        pipe.incrby(keys.stats_alerts(s), ALERTS_PER_SECOND)
        pipe.expire(keys.stats_alerts(s), 3600)
        pipe.expire(keys.stats_transactions(s), 3600)
    pipe.execute()


def enter_key(browser: Chromium, key: str) -> None:
    browser.evaluate(
        f"document.getElementById('api-key').value = {json.dumps(key)};"
        "document.getElementById('key-form').requestSubmit(); true"
    )


def stored(base_url: str, alerts: list[Alert]) -> Callable[[], bool]:
    def check() -> bool:
        return all(
            requests.get(
                f"{base_url}/api/v1/alerts/{a.alertId}", headers=HEADERS, timeout=5
            ).status_code
            == 200
            for a in alerts
        )

    return check


@pytest.mark.browser
def test_dashboard_shows_alerts_live(
    browser: Chromium,
    dashboard_url: str,
    publisher: AlertPublisher,
    redis_client: redis.Redis,
) -> None:
    seed_stats(redis_client, int(time.time()))
    # Stored before the page opens: the page loads them from /api/v1/alerts.
    before = [large("alice", "12500.50", "EUR"), rapid("bob", 7)]
    for alert in before:  # one by one: their order is then the store's order
        publisher.publish([alert])
        wait_for(stored(dashboard_url, [alert]), timeout=30, interval=0.1, what="an alert stored")

    browser.navigate(f"{dashboard_url}/")
    # The key is asked for first: nothing is shown without it.
    browser.wait_until(
        f"{KEY_FORM_SHOWN} && document.getElementById('status').dataset.state === 'locked'",
        what="the API key form",
    )
    assert browser.evaluate(FEED_IDS) == []
    enter_key(browser, "not-the-key")
    browser.wait_until(
        f"{KEY_FORM_SHOWN} && document.getElementById('key-form').dataset.refused === ''",
        what="a wrong key refused and asked again",
    )
    assert browser.evaluate("sessionStorage.length") == 0
    ARTIFACTS.mkdir(exist_ok=True)
    browser.screenshot(ARTIFACTS / "dashboard-key.png")
    enter_key(browser, KEY)
    browser.wait_until(LIVE, what="the live stream")
    assert browser.evaluate(f"{KEY_FORM_SHOWN} || sessionStorage.length") == 1
    # The only errors so far are the browser's notes of the refused requests.
    refused = list(browser.errors)
    assert refused and all("401" in error for error in refused), refused
    browser.errors.clear()
    ids = browser.wait_until(f"{FEED_IDS}.length === 2 && {FEED_IDS}", what="the stored alerts")
    assert ids == [before[1].alertId, before[0].alertId]  # newest first

    # Live: each alert appears on top of the feed, without a reload.
    live = [travel("carol"), large("dave", "250000"), rapid("alice", 9)]
    for alert in live:
        publisher.publish([alert])
        browser.wait_until(
            f"{FEED_IDS}[0] === {json.dumps(alert.alertId)}", what=f"alert {alert.alertId}"
        )
    expected = [a.alertId for a in reversed(before + live)]
    assert browser.evaluate(FEED_IDS) == expected

    top = browser.evaluate(
        "[...document.querySelectorAll('#feed li')[2].children].map(c => c.textContent.trim())"
    )
    assert top[1:] == [
        "critical",
        "Location change· 10,839 km",
        "carol",
        "¥120",
        "New York→Tokyo",
    ], top
    assert browser.evaluate("document.querySelectorAll('#feed li')[1].children[4].textContent") == (
        "$250,000.00"
    )

    counts = {
        alert_type: browser.evaluate(type_count(alert_type))
        for alert_type in (
            "large_transaction_detected",
            "multiple_rapid_transactions_detected",
            "unusual_location_change_detected",
        )
    }
    assert counts == {
        "large_transaction_detected": "2",
        "multiple_rapid_transactions_detected": "2",
        "unusual_location_change_detected": "1",
    }
    assert browser.evaluate("document.querySelector('.types-total strong').textContent") == "5"

    # The chart's numbers come from /api/v1/stats: the seeded constant rates over 5 min,
    # plus the five alerts the store counted once their seconds are complete.
    browser.wait_until(
        f"document.getElementById('kpi-tx-total').textContent === '{300 * TX_PER_SECOND:,}'",
        what="the transactions total from /api/v1/stats",
    )
    assert browser.evaluate("document.getElementById('kpi-tps').textContent") == str(TX_PER_SECOND)
    alerts_total = 300 * ALERTS_PER_SECOND + 5
    browser.wait_until(
        f"document.getElementById('kpi-alert-total').textContent === '{alerts_total}'",
        what="the alerts total to include the five stored alerts",
    )
    ARTIFACTS.mkdir(exist_ok=True)
    browser.screenshot(ARTIFACTS / "dashboard.png")

    # The user filter re-subscribes: only alice's alerts, old and new.
    browser.evaluate(
        "document.getElementById('user').value = 'alice';"
        "document.getElementById('filter').requestSubmit(); true"
    )
    browser.wait_until(
        f"{FEED_IDS}.join() === {json.dumps(f'{live[2].alertId},{before[0].alertId}')}"
        " && document.getElementById('status').dataset.state === 'live'",
        what="alice's alerts only",
    )
    assert "userId=alice" in browser.evaluate("location.search")
    other = large("bob", "99999")
    publisher.publish([other])
    wait_for(
        stored(dashboard_url, [other]), timeout=30, interval=0.1, what="bob's alert to be stored"
    )
    mine = travel("alice")  # stored after bob's: once it shows, bob's has gone by
    publisher.publish([mine])
    browser.wait_until(f"{FEED_IDS}[0] === {json.dumps(mine.alertId)}", what="alice's new alert")
    assert other.alertId not in browser.evaluate(FEED_IDS)
    assert browser.evaluate(type_count("unusual_location_change_detected")) == "1"
    assert browser.evaluate("document.querySelector('.types-total strong').textContent") == "3"
    browser.screenshot(ARTIFACTS / "dashboard-filtered.png")

    # A click on a user in the feed filters too; "Show all" goes back to every user.
    browser.evaluate("document.getElementById('clear').click(); true")
    browser.wait_until(f"{FEED_IDS}.length === 7", what="every alert again")
    assert "userId" not in browser.evaluate("location.search")
    browser.evaluate(
        "[...document.querySelectorAll('#feed .user-link')]"
        ".find(b => b.textContent === 'carol').click(); true"
    )
    browser.wait_until(
        f"{FEED_IDS}.join() === {json.dumps(live[0].alertId)}", what="carol's alert only"
    )

    # A reload in the same tab keeps the key: live again, never asked.
    browser.navigate(f"{dashboard_url}/")
    browser.wait_until(f"{LIVE} && {FEED_IDS}.length === 7", what="live again after a reload")
    assert browser.evaluate(KEY_FORM_SHOWN) is False
    after_reload = travel("erin")
    publisher.publish([after_reload])
    browser.wait_until(
        f"{FEED_IDS}[0] === {json.dumps(after_reload.alertId)}", what="a live alert after reload"
    )

    assert browser.errors == [], browser.errors


@pytest.fixture
def dashboard_only(redis_client: redis.Redis) -> FlaskClient:
    """Just the dashboard blueprint on the test's Redis, as create_app wires it."""
    app = Flask(__name__)
    app.register_blueprint(dashboard.blueprint)
    app.extensions[dashboard.REDIS_EXTENSION] = redis_client
    app.extensions[api.API_KEYS_EXTENSION] = ApiKeys([])  # open, as without API_KEYS
    return app.test_client()


def test_stats_counts_per_second(dashboard_only: FlaskClient, redis_client: redis.Redis) -> None:
    now = int(time.time())
    redis_client.set(keys.stats_transactions(now - 1), 7)
    redis_client.set(keys.stats_alerts(now - 1), 2)
    redis_client.set(keys.stats_transactions(now - 3), 5)

    response = dashboard_only.get("/api/v1/stats?seconds=10")
    assert response.status_code == 200
    body = response.get_json()
    assert len(body["seconds"]) == len(body["transactions"]) == len(body["alerts"]) == 10
    assert body["seconds"] == list(range(body["seconds"][0], body["seconds"][0] + 10))
    assert now <= body["seconds"][-1] <= now + 1  # ends with the current second
    counts = zip(body["transactions"], body["alerts"], strict=True)
    by_second = dict(zip(body["seconds"], counts, strict=True))
    assert by_second[now - 1] == (7, 2)
    assert by_second[now - 3] == (5, 0)
    assert sum(body["transactions"]) == 12

    assert len(dashboard_only.get("/api/v1/stats").get_json()["seconds"]) == 300
    assert len(dashboard_only.get("/api/v1/stats?seconds=3600").get_json()["alerts"]) == 3600


@pytest.mark.parametrize("bad", ["0", "3601", "abc", "-5", "1.5", ""])
def test_stats_rejects_bad_seconds(dashboard_only: FlaskClient, bad: str) -> None:
    response = dashboard_only.get(f"/api/v1/stats?seconds={bad}")
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "validation_error"
    assert error["details"] == [
        {"field": "seconds", "message": "must be an integer from 1 to 3600"}
    ]


def test_page_and_assets_are_self_contained(dashboard_only: FlaskClient) -> None:
    page = dashboard_only.get("/")
    assert page.status_code == 200
    assert page.mimetype == "text/html"
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    html = page.get_data(as_text=True)
    assert "http://" not in html and "https://" not in html
    for asset, mimetype in (
        ("/dashboard/static/dashboard.css", "text/css"),
        ("/dashboard/static/dashboard.js", "text/javascript"),
    ):
        assert f'"{asset}"' in html
        response = dashboard_only.get(asset)
        assert response.status_code == 200
        assert response.mimetype == mimetype
        text = response.get_data(as_text=True)
        assert "http://" not in text and "https://" not in text, asset
        response.close()
