"""Cases over real HTTP on a real Redis: one open case per user collecting its alerts,
assign, close with a verdict (a second close is 409), append-only history, a closed case
stays closed and the user's next alert opens a new one, 404, 400 with JSON errors,
paging by cursor, and 401 without a key when keys are set."""

from __future__ import annotations

import json
from collections.abc import Iterator
from importlib import resources
from typing import Any

import pytest
import redis
import requests
from flask import Flask

from alert_service import create_app
from alert_service.cases.api import CASES_EXTENSION
from alert_service.cases.quality import RuleQuality
from alert_service.cases.store import CaseStore
from alert_service.openapi import document
from alert_service.store import AlertStore
from fraud_common import keys
from fraud_common.schemas import Alert
from tests.conftest import TopicNames
from tests.support.alert_app import alert_settings, closing, served
from tests.support.cases_support import CasesClient, rule_alert
from tests.support.transaction_server import assert_conforms

pytestmark = pytest.mark.integration

KEYS = ("first-case-key", "second-case-key")


@pytest.fixture
def service(
    kafka_bootstrap: str, redis_url: str, topics: TopicNames
) -> Iterator[tuple[Flask, str]]:
    app = create_app(alert_settings(kafka_bootstrap, redis_url, topics))
    with closing(app), served(app) as url:
        yield app, url


def deliver(app: Flask, alerts: list[Alert]) -> None:
    """What the consumer's handler does with a batch: store, then cases."""
    store: AlertStore = app.extensions["alert_service.store"]
    cases: CaseStore = app.extensions[CASES_EXTENSION]
    store.store(alerts)
    cases.add_alerts(alerts)


def only_case(client: CasesClient, user: str, status: str = "open") -> dict[str, Any]:
    found = [c for c in client.all_cases(status=status) if c["userId"] == user]
    assert len(found) == 1, found
    return found[0]


def test_a_case_collects_a_users_alerts_and_is_closed_once_with_its_history(
    service: tuple[Flask, str], redis_client: redis.Redis
) -> None:
    app, url = service
    client = CasesClient(url)
    first = rule_alert("u-ana", "large-amount", 60)
    second = rule_alert("u-ana", "location-change", 85)
    third = rule_alert("u-ana", "rapid-transactions", 40)
    other = rule_alert("u-bob", "large-amount", 60)
    deliver(app, [first, other])
    deliver(app, [second, third, second])  # the same alert twice in one batch

    case = only_case(client, "u-ana")
    assert case["status"] == "open"
    assert case["alertCount"] == 3
    assert case["maxRiskScore"] == 85
    assert case["assignee"] is None and case["verdict"] is None
    assert only_case(client, "u-bob")["caseId"] != case["caseId"]

    detail = client.get(case["caseId"]).json()
    assert [a["alertId"] for a in detail["alerts"]] == [
        first.alertId,
        second.alertId,
        third.alertId,
    ]
    assert [h["action"] for h in detail["history"]] == ["opened", "alert_added", "alert_added"]
    assert all(h["actor"] == "system" for h in detail["history"])
    assert detail["history"][0]["details"]["alertId"] == first.alertId

    assigned = client.post(
        case["caseId"], "assign", {"assignee": "Ana Pérez"}, **{"X-Analyst": "lead"}
    )
    assert assigned.status_code == 200, assigned.text
    assert assigned.json()["assignee"] == "Ana Pérez"
    assert assigned.json()["history"][-1] | {"at": None} == {
        "at": None,
        "actor": "lead",
        "action": "assigned",
        "details": {"assignee": "Ana Pérez", "previous": None},
    }

    closed = client.post(
        case["caseId"],
        "close",
        {"verdict": "confirmed_fraud", "comment": "card stolen"},
        **{"X-Analyst": "Ana Pérez"},
    )
    assert closed.status_code == 200, closed.text
    body = closed.json()
    assert (body["status"], body["verdict"], body["comment"]) == (
        "closed",
        "confirmed_fraud",
        "card stolen",
    )
    assert body["closedBy"] == "Ana Pérez"
    assert {a["label"] for a in body["alerts"]} == {"fraud"}
    history = body["history"]
    assert [h["action"] for h in history] == [
        "opened",
        "alert_added",
        "alert_added",
        "assigned",
        "closed",
    ]
    assert history[-1]["details"] == {"verdict": "confirmed_fraud", "comment": "card stolen"}
    assert history[:4] == detail["history"] + [assigned.json()["history"][-1]]  # append-only

    again = client.post(case["caseId"], "close", {"verdict": "legitimate"})
    assert again.status_code == 409
    doc = document()  # every kind of answer is the documented one
    assert_conforms(doc, "/api/v1/cases", "get", client.page(status="closed"))
    assert_conforms(doc, "/api/v1/cases/{caseId}", "get", client.get(case["caseId"]))
    assert_conforms(doc, "/api/v1/cases/{caseId}", "get", client.get("unknown"))
    for action, response in (("assign", assigned), ("close", closed), ("close", again)):
        assert_conforms(doc, f"/api/v1/cases/{{caseId}}/{action}", "post", response)
    assert again.json()["error"]["code"] == "conflict"
    assert client.post(case["caseId"], "assign", {"assignee": "x"}).status_code == 409
    assert client.get(case["caseId"]).json()["history"] == history  # nothing written

    # Closed stays closed; a redelivered alert of the closed case joins nothing; the
    # user's next alert opens a new case.
    deliver(app, [first])
    assert client.all_cases(status="open") == [only_case(client, "u-bob")]
    later = rule_alert("u-ana", "large-amount", 70)
    deliver(app, [later])
    reopened = only_case(client, "u-ana")
    assert reopened["caseId"] != case["caseId"]
    assert reopened["alertCount"] == 1
    assert only_case(client, "u-ana", "closed")["caseId"] == case["caseId"]
    assert client.get(case["caseId"]).json()["alertCount"] == 3

    # The labels: one line per transaction of the closed case.
    labels = requests.get(f"{url}/api/v1/labels", timeout=10)
    assert labels.headers["Content-Type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in labels.text.splitlines()]
    assert sorted(line["transactionId"] for line in lines) == sorted(
        a.transaction.transactionId for a in (first, second, third)
    )
    assert {(line["label"], line["caseId"], line["userId"]) for line in lines} == {
        ("fraud", case["caseId"], "u-ana")
    }
    # No key of a case expires: they outlive the alerts.
    for key in (keys.case("u-ana", case["caseId"]), keys.case_history("u-ana", case["caseId"])):
        assert redis_client.ttl(key) == -1


def test_unknown_cases_are_404_and_bad_bodies_400_as_json(service: tuple[Flask, str]) -> None:
    app, url = service
    client = CasesClient(url)
    for case_id in ("no-such-case", "bad%20id", "x" * 200):
        assert client.get(case_id).status_code == 404
        response = client.post(case_id, "close", {"verdict": "legitimate"})
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
        assert client.post(case_id, "assign", {"assignee": "ana"}).status_code == 404

    deliver(app, [rule_alert("u-bodies")])
    case_id = only_case(client, "u-bodies")["caseId"]
    for action, body, field in [
        ("close", {}, "verdict"),
        ("close", {"verdict": "fraud"}, "verdict"),
        ("close", {"verdict": "legitimate", "comment": 5}, "comment"),
        ("close", {"verdict": "legitimate", "extra": 1}, "extra"),
        ("close", {"verdict": "legitimate", "comment": "x" * 2001}, "comment"),
        ("close", ["legitimate"], "body"),
        ("assign", {}, "assignee"),
        ("assign", {"assignee": ""}, "assignee"),
        ("assign", {"assignee": " ana"}, "assignee"),
        ("assign", {"assignee": "a\nb"}, "assignee"),
    ]:
        response = client.post(case_id, action, body)
        assert response.status_code == 400, (action, body, response.text)
        error = response.json()["error"]
        assert error["code"] == "validation_error"
        assert field in [d["field"] for d in error["details"]], error
    raw = requests.post(
        f"{url}/api/v1/cases/{case_id}/close",
        data="{not json",
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert (raw.status_code, raw.json()["error"]["code"]) == (400, "invalid_json")
    text = requests.post(f"{url}/api/v1/cases/{case_id}/close", data="x", timeout=10)
    assert text.status_code == 415
    bad_analyst = client.post(case_id, "assign", {"assignee": "ana"}, **{"X-Analyst": ""})
    assert bad_analyst.status_code == 400
    for params in ({"status": "pending"}, {"limit": "0"}, {"cursor": "not-a-cursor"}):
        response = client.page(**params)
        assert response.status_code == 400, params
        assert response.json()["error"]["code"] == "validation_error"
    assert client.get(case_id).json()["history"][-1]["action"] == "opened"  # nothing changed


def test_cases_page_by_cursor_newest_activity_first(service: tuple[Flask, str]) -> None:
    app, url = service
    client = CasesClient(url)
    clock = [1_800_000_000.0]
    # A clock of the test's: pairs of cases with the same activity time page correctly too.
    client_redis = app.extensions["alert_service.redis"]
    app.extensions[CASES_EXTENSION] = CaseStore(
        client_redis, RuleQuality(client_redis), clock=lambda: clock[0]
    )
    users = [f"u-page-{i}" for i in range(7)]
    for i, user in enumerate(users):
        clock[0] = 1_800_000_000.0 + (i // 2)  # pairs of cases with the same activity time
        deliver(app, [rule_alert(user)])
    clock[0] += 10
    deliver(app, [rule_alert(users[0])])  # the oldest case gets the newest activity

    pages = []
    cursor = None
    while True:
        response = client.page(limit=3, **({"cursor": cursor} if cursor else {}))
        body = response.json()
        pages.append([c["userId"] for c in body["cases"]])
        cursor = body["nextCursor"]
        if cursor is None:
            break
    assert [len(p) for p in pages] == [3, 3, 1]
    listed = [u for page in pages for u in page]
    assert sorted(listed) == sorted(users)  # each case once
    assert listed[0] == users[0]
    stamps = [c["updatedAt"] for c in client.all_cases()]
    assert stamps == sorted(stamps, reverse=True)

    case_id = only_case(client, users[3])["caseId"]
    assert client.post(case_id, "close", {"verdict": "false_positive"}).status_code == 200
    assert [c["userId"] for c in client.all_cases(status="closed")] == [users[3]]
    assert users[3] not in [c["userId"] for c in client.all_cases(status="open", limit=2)]
    assert len(client.all_cases(status="open", limit=2)) == 6


def test_with_keys_every_case_route_needs_one_and_the_key_names_the_actor(
    kafka_bootstrap: str, redis_url: str, topics: TopicNames
) -> None:
    settings = alert_settings(kafka_bootstrap, redis_url, topics, api_keys=",".join(KEYS))
    with closing(create_app(settings)) as app, served(app) as url:
        deliver(app, [rule_alert("u-keyed")])
        keyed = CasesClient(url, {"X-API-Key": KEYS[1]})
        case_id = only_case(keyed, "u-keyed")["caseId"]
        for headers in ({}, {"X-API-Key": "wrong"}):
            anonymous = CasesClient(url, headers)
            for response in (
                anonymous.page(),
                anonymous.get(case_id),
                anonymous.post(case_id, "assign", {"assignee": "ana"}),
                anonymous.post(case_id, "close", {"verdict": "legitimate"}),
                requests.get(f"{url}/api/v1/rules/quality", headers=headers, timeout=10),
                requests.get(f"{url}/api/v1/labels", headers=headers, timeout=10),
            ):
                assert response.status_code == 401, response.request.url
                assert response.json()["error"]["code"] == "unauthorized"
                assert "u-keyed" not in response.text
        assert keyed.post(case_id, "assign", {"assignee": "ana"}).status_code == 200
        closed = keyed.post(case_id, "close", {"verdict": "legitimate"})
        assert [h["actor"] for h in closed.json()["history"]] == ["system", "key-2", "key-2"]
        assert KEYS[1] not in closed.text


def test_without_keys_the_actor_is_anonymous_or_the_analyst(service: tuple[Flask, str]) -> None:
    app, url = service
    client = CasesClient(url)
    deliver(app, [rule_alert("u-open")])
    case_id = only_case(client, "u-open")["caseId"]
    client.post(case_id, "assign", {"assignee": "ana"})
    closed = client.post(case_id, "close", {"verdict": "legitimate"}, **{"X-Analyst": "ana"})
    assert [h["actor"] for h in closed.json()["history"]] == ["system", "anonymous", "ana"]


def test_a_retry_repairs_a_crash_between_the_steps(
    service: tuple[Flask, str], redis_client: redis.Redis
) -> None:
    """What a crash after a case script and before the later steps leaves is finished by
    the retry: the redelivered batch (lookup, indexes, counters) or the second close
    (labels, counters, indexes), without counting anything twice."""
    app, url = service
    client = CasesClient(url)
    alert = rule_alert("u-crash", "large-amount", 75)
    deliver(app, [alert])
    case_id = only_case(client, "u-crash")["caseId"]
    # As if the process died right after add_alert.lua: no lookup, no index, no count.
    redis_client.delete(
        keys.case_owner(case_id),
        keys.cases_index("open"),
        keys.cases_index("all"),
        keys.rule_quality("large-amount"),
        keys.rule_quality_seen("large-amount"),
    )
    assert client.get(case_id).status_code == 404
    deliver(app, [alert])  # the redelivery
    assert only_case(client, "u-crash")["alertCount"] == 1
    assert client.quality()["large-amount"]["alerts"] == 1

    # As if the process died right after change_case.lua closed it.
    source = resources.files("alert_service.cases").joinpath("change_case.lua").read_text()
    redis_client.register_script(source)(
        keys=[
            keys.case("u-crash", case_id),
            keys.case_history("u-crash", case_id),
            keys.case_open("u-crash"),
        ],
        args=[
            *("close", case_id, "ana", "2026-12-01T00:00:00.000Z", 1_795_000_000_000),
            *("confirmed_fraud", ""),
        ],
    )
    assert client.quality()["large-amount"]["labelled"] == 0
    retry = client.post(case_id, "close", {"verdict": "confirmed_fraud"})
    assert retry.status_code == 409
    quality = client.quality()["large-amount"]
    assert (quality["labelled"], quality["confirmedFraud"], quality["precision"]) == (1, 1, 1.0)
    assert client.all_cases(status="open") == []
    assert [c["caseId"] for c in client.all_cases(status="closed")] == [case_id]
    assert client.post(case_id, "close", {"verdict": "confirmed_fraud"}).status_code == 409
    assert client.quality()["large-amount"]["labelled"] == 1  # still once


def test_a_case_still_reads_after_its_alerts_expired(
    service: tuple[Flask, str], redis_client: redis.Redis
) -> None:
    app, url = service
    client = CasesClient(url)
    alerts = [rule_alert("u-old", "large-amount", 60), rule_alert("u-old", "location-change", 80)]
    deliver(app, alerts)
    case_id = only_case(client, "u-old")["caseId"]
    for alert in alerts:  # what the alert TTL does after 30 days
        redis_client.delete(keys.alert(alert.alertId))
    redis_client.delete(keys.alerts_by_user("u-old"), keys.ALERTS_RECENT)
    detail = client.get(case_id).json()
    assert [a["alertId"] for a in detail["alerts"]] == [a.alertId for a in alerts]
    closed = client.post(case_id, "close", {"verdict": "false_positive"})
    assert closed.status_code == 200
    assert client.quality()["location-change"]["falsePositive"] == 1
