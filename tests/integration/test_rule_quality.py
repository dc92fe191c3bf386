"""Per-rule precision from verdicts on a fixed dataset, over real HTTP on a real Redis:
each alert counted once (also redelivered), each label once (also after a second close),
precision = confirmed / labelled and null for a rule with nothing labelled; the labels
come out as the backtest's JSON lines."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import requests
from flask import Flask

from alert_service import create_app
from alert_service.openapi import document
from fraud_common.schemas import Alert
from tests.conftest import TopicNames
from tests.support.alert_app import alert_settings, closing, served
from tests.support.cases_support import CasesClient, rule_alert
from tests.support.transaction_server import assert_conforms

pytestmark = pytest.mark.integration

# user -> (rules of its alerts, verdict of its case; None: left open)
DATASET: dict[str, tuple[tuple[str, ...], str | None]] = {
    "q-1": (("large-amount", "location-change"), "confirmed_fraud"),
    "q-2": (("large-amount",), "false_positive"),
    "q-3": (("large-amount", "rapid-transactions"), "legitimate"),
    "q-4": (("rapid-transactions", "location-change"), "confirmed_fraud"),
    "q-5": (("large-amount",), None),
    "q-6": (("location-change",), "false_positive"),
    "q-7": (("amount-velocity",), None),
}
EXPECTED = {
    "large-amount": {"alerts": 4, "labelled": 3, "confirmedFraud": 1, "falsePositive": 1},
    "location-change": {"alerts": 3, "labelled": 3, "confirmedFraud": 2, "falsePositive": 1},
    "rapid-transactions": {"alerts": 2, "labelled": 2, "confirmedFraud": 1, "falsePositive": 0},
    "amount-velocity": {"alerts": 1, "labelled": 0, "confirmedFraud": 0, "falsePositive": 0},
}
PRECISION = {
    "large-amount": 1 / 3,
    "location-change": 2 / 3,
    "rapid-transactions": 0.5,
    "amount-velocity": None,
}


@pytest.fixture
def service(
    kafka_bootstrap: str, redis_url: str, topics: TopicNames
) -> Iterator[tuple[Flask, str]]:
    app = create_app(alert_settings(kafka_bootstrap, redis_url, topics))
    with closing(app), served(app) as url:
        yield app, url


def deliver(app: Flask, alerts: list[Alert]) -> None:
    app.extensions["alert_service.store"].store(alerts)
    app.extensions["alert_service.cases"].add_alerts(alerts)


def test_precision_per_rule_from_verdicts_on_a_fixed_dataset(
    service: tuple[Flask, str],
) -> None:
    app, url = service
    client = CasesClient(url)
    alerts = {
        user: [rule_alert(user, rule, 50 + 10 * i) for i, rule in enumerate(rules)]
        for user, (rules, _) in DATASET.items()
    }
    everything = [a for user_alerts in alerts.values() for a in user_alerts]
    deliver(app, everything)
    deliver(app, everything[::-1])  # redelivered, in another order: counted once
    assert {r: q["alerts"] for r, q in client.quality().items()} == {
        r: e["alerts"] for r, e in EXPECTED.items()
    }
    assert all(q["precision"] is None for q in client.quality().values())

    cases = {c["userId"]: c["caseId"] for c in client.all_cases(status="open")}
    for user, (_, verdict) in DATASET.items():
        if verdict is not None:
            closed = client.post(cases[user], "close", {"verdict": verdict, "comment": "checked"})
            assert closed.status_code == 200, closed.text
            again = client.post(cases[user], "close", {"verdict": verdict})
            assert again.status_code == 409  # and the counters stay as they are

    response = requests.get(f"{url}/api/v1/rules/quality", timeout=10)
    assert_conforms(document(), "/api/v1/rules/quality", "get", response)
    quality = client.quality()
    assert {r: {k: q[k] for k in EXPECTED[r]} for r, q in quality.items()} == EXPECTED
    assert {r: q["precision"] for r, q in quality.items()} == PRECISION

    lines = [
        json.loads(line)
        for line in requests.get(f"{url}/api/v1/labels", timeout=10).text.splitlines()
    ]
    by_txn = {line["transactionId"]: line for line in lines}
    expected_labels = {
        a.transaction.transactionId: ("fraud" if verdict == "confirmed_fraud" else "legit", user)
        for user, (_, verdict) in DATASET.items()
        if verdict is not None
        for a in alerts[user]
    }
    assert {t: (line["label"], line["userId"]) for t, line in by_txn.items()} == expected_labels
    assert all(line["caseId"] == cases[line["userId"]] for line in lines)
    assert len(lines) == len(by_txn)  # one line per transaction
