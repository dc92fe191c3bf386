"""The analyst's queue in a real headless Chromium against the real alert-service (its
consumer on the session's broker, the test's Redis, API_KEYS set): alerts published to
Kafka appear as one case per user in the queue (highest risk first); the case page shows
its alerts and history; assign and close with a verdict go through the buttons; the
rules panel then shows the precision, and the live feed still runs beside it. The
screenshot lands in ``artifacts/cases.png``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from alert_service import create_app
from tests.browser.chromium import Chromium, find_chromium
from tests.conftest import TopicNames
from tests.support.alert_app import AlertPublisher, alert_settings, running, served
from tests.support.cases_support import rule_alert

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
KEY = "cases-test-key"
QUEUE = "[...document.querySelectorAll('#queue tr')].map(r => r.dataset.caseId)"
QUEUE_USERS = "[...document.querySelectorAll('#queue tr')].map(r => r.children[1].textContent)"
HISTORY = "[...document.querySelectorAll('#case-history li')].map(li => li.dataset.action)"
NO_PRECISION = "\u2013"  # the page's dash for "nothing labelled"
FEED_IDS = "[...document.querySelectorAll('#feed li')].map(li => li.dataset.alertId)"


def precision_of(rule: str) -> str:
    return (
        f"document.querySelector('#rules li[data-rule-id=\"{rule}\"] .rule-precision')?.textContent"
    )


def run(browser: Chromium, script: str) -> None:
    browser.evaluate(f"{script}; true")


@pytest.fixture
def browser() -> Iterator[Chromium]:
    binary = find_chromium()
    if binary is None:
        pytest.skip("no Chromium installed (apt-get install chromium, or set CHROMIUM=...)")
    with Chromium(binary, width=1440, height=1400) as chromium:
        yield chromium


@pytest.fixture
def service_url(kafka_bootstrap: str, redis_url: str, topics: TopicNames) -> Iterator[str]:
    app = create_app(alert_settings(kafka_bootstrap, redis_url, topics, api_keys=KEY))
    with running(app), served(app) as base_url:
        yield base_url


def test_alerts_become_a_case_that_is_assigned_and_closed_in_the_dashboard(
    browser: Chromium, service_url: str, kafka_bootstrap: str, topics: TopicNames
) -> None:
    headers = {"X-API-Key": KEY}
    publisher = AlertPublisher(kafka_bootstrap, topics.alerts)
    mallory = [
        rule_alert("mallory", "large-amount", 60),
        rule_alert("mallory", "location-change", 92, location="Lagos"),
    ]
    trent = [rule_alert("trent", "rapid-transactions", 45)]
    try:
        publisher.publish(mallory + trent)

        browser.navigate(f"{service_url}/")
        browser.wait_until("!document.getElementById('key-form').hidden", what="the key form")
        run(
            browser,
            f"document.getElementById('api-key').value = {json.dumps(KEY)};"
            "document.getElementById('key-form').requestSubmit()",
        )
        # One case per user, the riskiest first.
        users = browser.wait_until(f"{QUEUE}.length === 2 && {QUEUE_USERS}", what="two cases")
        assert users == ["mallory", "trent"]
        browser.errors.clear()  # the notes of the requests refused before the key
        case_id = browser.evaluate(f"{QUEUE}[0]")
        assert browser.evaluate("document.querySelector('#queue tr').dataset.risk") == "92"
        assert (
            browser.evaluate(precision_of("large-amount")) == NO_PRECISION
        )  # nothing labelled yet

        # The case page: its alerts and history.
        run(browser, f"document.querySelector('#queue tr[data-case-id=\"{case_id}\"]').click()")
        browser.wait_until(
            "!document.getElementById('case-view').hidden"
            " && document.querySelectorAll('#case-alerts li').length === 2",
            what="the case page with its two alerts",
        )
        assert browser.evaluate(HISTORY) == ["opened", "alert_added"]
        shown = browser.evaluate(
            "[...document.querySelectorAll('#case-alerts li')].map(li => li.dataset.alertId)"
        )
        assert shown == [a.alertId for a in mallory]

        # Assign, as a named analyst.
        run(
            browser,
            "document.getElementById('analyst-name').value = 'Ana';"
            "document.getElementById('assignee').value = 'Ana';"
            "document.getElementById('assign-button').click()",
        )
        browser.wait_until(f"{HISTORY}.at(-1) === 'assigned'", what="the assignment")
        browser.wait_until(
            "document.querySelector('#queue tr').children[3].textContent === 'Ana'",
            what="the queue to show the assignee",
        )

        # Close with a verdict and a comment.
        run(
            browser,
            "document.getElementById('verdict').value = 'confirmed_fraud';"
            "document.getElementById('comment').value = 'stolen card, customer called';"
            "document.getElementById('close-button').click()",
        )
        browser.wait_until(
            "document.getElementById('case-view').dataset.status === 'closed'"
            " && document.getElementById('case-actions').hidden",
            what="the case closed and its buttons gone",
        )
        assert browser.evaluate(HISTORY) == ["opened", "alert_added", "assigned", "closed"]
        assert browser.evaluate("document.getElementById('case-status').textContent") == (
            "closed · Confirmed fraud"
        )
        labels = "[...document.querySelectorAll('#case-alerts .pill')].map(p => p.textContent)"
        assert browser.evaluate(labels) == ["fraud", "fraud"]
        browser.wait_until(f"{QUEUE_USERS}.join() === 'trent'", what="the case out of the queue")

        # The rules panel: precision from the verdict.
        browser.wait_until(f"{precision_of('location-change')} === '100%'", what="precision")
        assert browser.evaluate(precision_of("large-amount")) == "100%"
        assert browser.evaluate(precision_of("rapid-transactions")) == NO_PRECISION  # trent's: open
        ARTIFACTS.mkdir(exist_ok=True)
        browser.screenshot(ARTIFACTS / "cases.png")

        # What the page did is what the API holds, with the analyst named in the history.
        case = requests.get(f"{service_url}/api/v1/cases/{case_id}", headers=headers, timeout=10)
        history = case.json()["history"]
        assert [(h["action"], h["actor"]) for h in history[2:]] == [
            ("assigned", "Ana"),
            ("closed", "Ana"),
        ]
        assert history[3]["details"]["comment"] == "stolen card, customer called"

        # The live feed runs beside the queue; the user's next alert opens a new case.
        later = rule_alert("mallory", "large-amount", 70)
        publisher.publish([later])
        browser.wait_until(f"{FEED_IDS}[0] === {json.dumps(later.alertId)}", what="live feed")
        browser.wait_until(f"{QUEUE_USERS}.join() === 'mallory,trent'", what="a new case")
        assert browser.evaluate(f"{QUEUE}[0]") != case_id
    finally:
        publisher.close()
    assert browser.errors == [], browser.errors
