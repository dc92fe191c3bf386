"""The README's analyst loop on a running stack, step by step (issue 11's "done when"):
simulated traffic, a case closed with a verdict, the rule's precision from it, a backtest
of a lowered threshold over the exported topic, the lowered rule in shadow beside the
live one (its hits on the decision, no alert), then switched on in its place.

Its own stack (one detector), because it edits the rules file the detector watches.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests

from fraud_detection.rules.config import version_of
from tests.support.devstack_helpers import client_env, run_client, warm_test_stack
from tests.support.rules_files import rules_document, write_rules
from tools.devstack import DevStack
from tools.local_services import wait_for

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
LIVE = Decimal("10000")  # the shipped large-amount threshold
LOWER = Decimal("2000")
COPY = "large-amount-lower"


@pytest.fixture(scope="module")
def rules_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_rules(tmp_path_factory.mktemp("rules") / "rules.yaml", rules_document())


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, rules_file: Path) -> Iterator[DevStack]:
    with warm_test_stack(
        tmp_path_factory.mktemp("devstack"),
        detectors=1,
        extra_env={"RULES_FILE": str(rules_file), "RULES_POLL_SECONDS": "0.2"},
    ) as running:
        yield running


def _tool(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=client_env(), timeout=180
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def _lower_copy(mode: str) -> dict[str, Any]:
    return {
        "id": COPY,
        "type": "large_amount",
        "alert_type": "large_transaction_detected",  # the live rule's: it takes over
        "severity": "high",
        "score": 60,
        "mode": mode,
        "params": {"threshold_usd": str(LOWER)},
    }


def _switch_rules(stack: DevStack, path: Path, document: dict[str, Any]) -> None:
    """Write the rules file and wait until the detector runs that version."""
    write_rules(path, document)
    version = version_of(path.read_bytes())
    detector = stack.service("detector").url
    wait_for(
        lambda: requests.get(f"{detector}/api/v1/rules", timeout=5).json()["version"] == version,
        timeout=30,
        what=f"the detector on rules {version}",
    )


def _decided(stack: DevStack, amount: str) -> dict[str, Any]:
    """POST one transaction of a fresh user and wait for its decision."""
    url = f"{stack.service('transaction').url}/api/v1/transactions"
    body = {"userId": f"loop-{uuid.uuid4().hex[:8]}", "amount": amount, "currency": "USD"}
    created = requests.post(url, json={**body, "location": "Chicago"}, timeout=10)
    assert created.status_code == 201, created.text
    transaction_id = created.json()["transactionId"]
    view: dict[str, Any] = {}

    def decided() -> bool:
        view.update(requests.get(f"{url}/{transaction_id}", timeout=5).json())
        return view["status"] != "pending"

    wait_for(decided, timeout=30, what="the decision")
    return view


def test_the_readme_analyst_loop(stack: DevStack, rules_file: Path, tmp_path: Path) -> None:
    alerts_url = stack.service("alert").url
    prefix = f"loop{uuid.uuid4().hex[:6]}"

    # 1. labelled traffic
    out = tmp_path / "sim"
    simulated = run_client(
        stack,
        "--simulate",
        *("--transactions", "1000", "--users", "100", "--rate", "300", "--seed", "11"),
        *("--user-prefix", prefix, "--out", str(out), "--json"),
        timeout=180,
    )
    assert simulated.returncode == 0, simulated.stdout + simulated.stderr
    assert json.loads(simulated.stdout.strip().splitlines()[-1])["undecided"] == 0

    # 2. a case closed with a verdict
    listed = requests.get(f"{alerts_url}/api/v1/cases", params={"limit": "100"}, timeout=10)
    cases = [c for c in listed.json()["cases"] if c["userId"].startswith(prefix)]
    assert cases, "the simulated fraud opened no case"
    case = requests.get(f"{alerts_url}/api/v1/cases/{cases[0]['caseId']}", timeout=10).json()
    analyst = {"X-Analyst": "ana"}
    assigned = requests.post(
        f"{alerts_url}/api/v1/cases/{case['caseId']}/assign",
        json={"assignee": "ana"},
        headers=analyst,
        timeout=10,
    )
    assert assigned.status_code == 200, assigned.text
    closed = requests.post(
        f"{alerts_url}/api/v1/cases/{case['caseId']}/close",
        json={"verdict": "confirmed_fraud", "comment": "walked through"},
        headers=analyst,
        timeout=10,
    )
    assert closed.status_code == 200, closed.text

    # 3. precision: the case's alerts, every one labelled fraud (a fresh stack)
    by_rule: dict[str, int] = {}
    for alert in case["alerts"]:
        by_rule[alert["ruleId"]] = by_rule.get(alert["ruleId"], 0) + 1
    quality = {
        r["ruleId"]: r
        for r in requests.get(f"{alerts_url}/api/v1/rules/quality", timeout=10).json()["rules"]
    }
    for rule_id, count in by_rule.items():
        assert (quality[rule_id]["labelled"], quality[rule_id]["confirmedFraud"]) == (count, count)
        assert quality[rule_id]["precision"] == 1.0

    # 4. backtest of the lowered threshold over the recorded traffic
    recorded = tmp_path / "recorded.jsonl"
    _tool(
        str(REPO / "tools" / "export_topic.py"),
        *("--bootstrap", stack.kafka_bootstrap_servers, "--topic", stack.transactions_topic),
        *("-o", str(recorded), "--quiet"),
    )
    sent = [json.loads(line) for line in recorded.open(encoding="utf-8")]
    assert sum(t["userId"].startswith(prefix) for t in sent) == 1000  # and the warm-up's
    between = {t["transactionId"] for t in sent if LOWER < Decimal(t["amountUsd"]) <= LIVE}
    assert between, "seed 11 sends no amount between the two thresholds"
    proposed = write_rules(
        tmp_path / "proposed.yaml",
        rules_document(params={"large-amount": {"threshold_usd": str(LOWER)}}),
    )
    report = json.loads(
        _tool(
            str(REPO / "tools" / "backtest.py"),
            *("--rules", str(rules_file), "--compare-rules", str(proposed)),
            *("--input", str(recorded), "--labels", str(out / "labels.jsonl"), "--json"),
            "--quiet",
        ).stdout
    )
    compared = report["compare"]
    assert {n["transactionId"] for n in compared["new"]} == between
    assert {n["ruleId"] for n in compared["new"]} == {"large-amount"}
    assert compared["gone"] == []
    assert compared["rules"]["large-amount"]["hits"] == (
        report["rules"]["large-amount"]["hits"] + len(between)
    )

    # 5. the lowered copy in shadow beside the live rule: on the decision, never alerted
    _switch_rules(stack, rules_file, rules_document(extra=[_lower_copy("shadow")]))
    shadowed = _decided(stack, "5000.00")
    assert shadowed["status"] == "approve"
    assert [h["ruleId"] for h in shadowed["shadowHits"]] == [COPY]
    assert (shadowed["reasons"], shadowed["alerts"]) == ([], [])

    # 6. switched on in its place, in one save
    _switch_rules(
        stack,
        rules_file,
        rules_document(rules={"large-amount": {"mode": "off"}}, extra=[_lower_copy("active")]),
    )
    live = _decided(stack, "5000.00")
    assert [r["ruleId"] for r in live["reasons"]] == [COPY]
    assert "shadowHits" not in live
    assert [a["alertType"] for a in live["alerts"]] == ["large_transaction_detected"]
    wait_for(
        lambda: requests.get(
            f"{alerts_url}/api/v1/alerts", params={"userId": live["userId"]}, timeout=10
        ).json()["alerts"],
        timeout=30,
        what="the alert stored",
    )
    stored = requests.get(
        f"{alerts_url}/api/v1/alerts", params={"userId": live["userId"]}, timeout=10
    )
    assert [a["ruleId"] for a in stored.json()["alerts"]] == [COPY]
