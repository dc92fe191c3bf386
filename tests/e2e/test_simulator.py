"""The simulator against the running local stack: its scorecard for a fixed seed.

What must be caught is derived, not written down: every pattern built for a rule type
that the shipped rules have active must be caught in every episode, and per pattern the
live scorecard must agree with a backtest of the very traffic sent (the detector's own
code on private state), as must the false alerts on legit transactions.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from fraud_detection.rules.config import load_rules
from tests.support.devstack_helpers import run_client
from tools.backtest_input import file_lines, load
from tools.backtest_replay import replay
from tools.devstack import DevStack
from tools.simulation.traffic import PATTERNS, TARGETS

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "fraud-detection-service" / "rules.yaml"


def _caught_per_pattern(labels: list[dict[str, Any]], alerted: dict[str, set[str]]) -> dict:
    """pattern -> (episodes, caught); one episode per fraud user."""
    episodes: dict[tuple[str, str], bool] = defaultdict(bool)
    for label in labels:
        if label["label"] == "fraud":
            key = (label["userId"], label["pattern"])
            episodes[key] |= bool(alerted.get(label["transactionId"]))
    result = {}
    for pattern in PATTERNS:
        mine = [caught for (_, p), caught in episodes.items() if p == pattern]
        result[pattern] = (len(mine), sum(mine))
    return result


def test_the_scorecard_for_a_fixed_seed(stack: DevStack, tmp_path: Path) -> None:
    out = tmp_path / "sim"
    result = run_client(
        stack,
        "--simulate",
        *("--transactions", "400", "--users", "40", "--rate", "200", "--seed", "5"),
        *("--user-prefix", f"e2e-{tmp_path.name[-12:]}", "--out", str(out), "--json"),
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    card = json.loads(result.stdout.strip().splitlines()[-1])
    assert card == json.loads((out / "scorecard.json").read_text())
    assert card["undecided"] == 0
    labels = [json.loads(line) for line in (out / "labels.jsonl").open()]

    # The same traffic through a backtest with the shipped rules.
    rules = load_rules(SHIPPED)
    loaded = load(file_lines(str(out / "transactions.jsonl")))
    assert loaded.skipped == 0 and len(loaded.transactions) == 400
    judged = replay(rules, loaded.transactions, progress=False)
    alerted = {one.transaction_id: set(one.alerts) for one in judged if one.alerts}
    expected = _caught_per_pattern(labels, alerted)

    live = {p: (row["injected"], row["caught"]) for p, row in card["patterns"].items()}
    assert live == expected
    active_types = {spec.rule_type for spec in rules.specs if spec.mode == "active"}
    for pattern in PATTERNS:
        injected, caught = live[pattern]
        assert injected >= 1, pattern
        if TARGETS[pattern] in active_types:
            assert caught == injected, f"{pattern}: {card['patterns'][pattern]}"
    legit = {lab["transactionId"] for lab in labels if lab["label"] == "legit"}
    false_alerts = sum(len(rules_hit) for t, rules_hit in alerted.items() if t in legit)
    assert card["legit"]["falseAlerts"] == false_alerts
