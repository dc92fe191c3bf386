"""The rule set: the shipped rules.yaml, decisions from scores and thresholds, modes and
effects, isolation of a rule that raises, and the version."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest

from fraud_detection.rules import (
    RULE_TYPES,
    RuleFailure,
    RuleHit,
    RuleSet,
    RuleSpec,
    large_amount,
    location_change,
)
from fraud_detection.rules.config import parse_rules
from fraud_detection.settings import DetectorSettings
from tests.support.detector_factories import T0, context, resolved, transaction
from tests.support.rules_files import rules_document, shipped_rules


def _rules(**changes) -> RuleSet:
    import yaml

    return parse_rules(yaml.safe_dump(rules_document(**changes)).encode(), "test.yaml")


def test_the_shipped_rules_are_the_contract_numbers() -> None:
    rules = shipped_rules()
    by_id = {s.rule_id: s for s in rules.specs}
    assert list(by_id) == ["large-amount", "rapid-transactions", "location-change"]
    assert by_id["large-amount"].params.threshold_usd == Decimal("10000")
    assert (
        by_id["rapid-transactions"].params.max_count,
        by_id["rapid-transactions"].params.window_seconds,
    ) == (5, 30)
    assert by_id["location-change"].params.min_distance_km == 100
    assert by_id["location-change"].params.max_speed_kmh == 900
    assert by_id["location-change"].params.name_window_seconds == 3600
    assert [(s.score, s.severity) for s in rules.specs] == [
        (60, "high"),
        (40, "medium"),
        (70, "high"),
    ]
    assert (rules.review_at, rules.decline_at) == (40, 80)
    assert DetectorSettings(
        kafka_bootstrap_servers="k:1", redis_url="redis://r"
    ).rules_file.samefile("fraud-detection-service/rules.yaml")


def test_user_state_outlives_the_slowest_impossible_trip() -> None:
    # Half the Earth at 900 km/h takes ~22 h: state younger than that still matters.
    assert shipped_rules().retention > timedelta(hours=22)
    slow = _rules(params={"location-change": {"max_speed_kmh": 100}})
    assert slow.retention > timedelta(hours=200)


def test_all_three_rules_fire_together_and_decline() -> None:
    rules = shipped_rules()
    earlier = [T0 + timedelta(seconds=s) for s in range(5)]
    txn = transaction(amount="20000", location="Tokyo", at=T0 + timedelta(seconds=6))
    ctx = context(txn, earlier=earlier, previous=(resolved("New York"), T0 + timedelta(seconds=4)))
    hits = rules.evaluate(ctx).hits
    assert [h.rule_id for h in hits] == ["large-amount", "rapid-transactions", "location-change"]
    assert [h.alert_type for h in hits] == [
        "large_transaction_detected",
        "multiple_rapid_transactions_detected",
        "unusual_location_change_detected",
    ]
    verdict = rules.verdict(hits)
    assert verdict == type(verdict)("decline", 93)  # 1 - 0.4 * 0.6 * 0.3 = 0.928


def test_a_clean_transaction_is_approved_with_score_zero() -> None:
    rules = shipped_rules()
    hits = rules.evaluate(context(transaction())).hits
    assert hits == ()
    verdict = rules.verdict(hits)
    assert (verdict.status, verdict.risk_score) == ("approve", 0)


@pytest.mark.parametrize(
    ("scores", "status", "risk"),
    [
        ([], "approve", 0),
        ([39], "approve", 39),
        ([40], "review", 40),
        ([60], "review", 60),
        ([60, 40], "review", 76),
        ([80], "decline", 80),
        ([60, 50], "decline", 80),
        ([100, 100], "decline", 100),
    ],
)
def test_scores_combine_and_thresholds_decide(scores: list[int], status: str, risk: int) -> None:
    hits = [RuleHit("r", "t", "high", score) for score in scores]
    verdict = shipped_rules().verdict(hits)
    assert (verdict.status, verdict.risk_score) == (status, risk)


def test_thresholds_come_from_the_file() -> None:
    strict = _rules(decision={"review_at": 10, "decline_at": 50})
    assert strict.verdict([RuleHit("r", "t", "high", 60)]).status == "decline"
    assert strict.verdict([RuleHit("r", "t", "high", 10)]).status == "review"


def test_lookback_is_the_longest_window() -> None:
    assert _rules(params={"rapid-transactions": {"window_seconds": 45}}).lookback == timedelta(
        seconds=45
    )


def test_shadow_rules_are_evaluated_but_never_score() -> None:
    rules = _rules(rules={"large-amount": {"mode": "shadow"}})
    outcome = rules.evaluate(context(transaction(amount="20000")))
    assert outcome.hits == ()
    assert [h.rule_id for h in outcome.shadow_hits] == ["large-amount"]
    assert rules.verdict(outcome.hits).status == "approve"


def test_a_proposed_threshold_runs_in_shadow_beside_the_rule_under_its_alert_type() -> None:
    live = next(s for s in shipped_rules().specs if s.rule_id == "large-amount")
    proposed = replace(
        live,
        rule_id="large-amount-2000",
        params=large_amount.Params(threshold_usd=Decimal("2000")),
        mode="shadow",
    )
    rules = RuleSet([*shipped_rules().specs, proposed])
    outcome = rules.evaluate(context(transaction(amount="5000")))
    assert outcome.hits == ()
    assert [(h.rule_id, h.alert_type) for h in outcome.shadow_hits] == [
        ("large-amount-2000", live.alert_type)
    ]
    both = rules.evaluate(context(transaction(amount="20000")))
    assert [h.rule_id for h in both.hits] == ["large-amount"]
    assert [h.rule_id for h in both.shadow_hits] == ["large-amount-2000"]
    # switched on, the old one off: still one active rule of the type
    swapped = RuleSet([replace(live, mode="off"), replace(proposed, mode="active")])
    assert [h.rule_id for h in swapped.evaluate(context(transaction(amount="5000"))).hits] == [
        "large-amount-2000"
    ]
    with pytest.raises(ValueError, match="two active rules raise the same alert type"):
        RuleSet([live, replace(proposed, mode="active")])


def test_a_rule_that_is_off_does_not_run() -> None:
    rules = _rules(rules={"large-amount": {"mode": "off"}})
    outcome = rules.evaluate(context(transaction(amount="20000")))
    assert (outcome.hits, outcome.shadow_hits) == ((), ())
    assert "large-amount" not in [s.rule_id for s in rules.evaluated]


def test_an_allow_rule_that_fires_approves_and_drops_every_other_reason() -> None:
    allow = RuleSpec(
        "big-spenders",
        "large_amount",
        "big_spender_allowed",
        large_amount.Params(threshold_usd=Decimal("5000")),
        score=0,
        effect="allow",
    )
    rules = RuleSet([*shipped_rules().specs, allow])
    outcome = rules.evaluate(context(transaction(amount="20000")))
    assert (outcome.hits, outcome.allowed_by) == ((), "big-spenders")
    assert rules.verdict(outcome.hits).status == "approve"


def test_specs_are_checked() -> None:
    with pytest.raises(ValueError, match="unknown rule type"):
        RuleSpec("r", "teleport", "x", object())
    with pytest.raises(TypeError):
        RuleSpec("r", "large_amount", "x", object())
    with pytest.raises(ValueError, match="same alert type"):
        spec = RuleSpec("r", "large_amount", "x", large_amount.Params())
        RuleSet([spec, spec])
    with pytest.raises(ValueError, match="same id"):
        RuleSet(
            [
                RuleSpec("r", "large_amount", "x", large_amount.Params()),
                RuleSpec("r", "location_change", "y", location_change.Params()),
            ]
        )
    with pytest.raises(ValueError, match="thresholds"):
        RuleSet([], review_at=90, decline_at=80)


def test_a_rule_that_raises_is_isolated_and_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug in one rule costs that rule its say on this transaction, nothing more."""

    def broken(context, params):
        raise ZeroDivisionError("division by zero")

    rapid = RULE_TYPES["rapid_transactions"]
    monkeypatch.setitem(RULE_TYPES, "rapid_transactions", replace(rapid, evaluate=broken))
    rules = shipped_rules()
    outcome = rules.evaluate(context(transaction(amount="20000")))
    assert [h.rule_id for h in outcome.hits] == ["large-amount"]
    assert outcome.failures == (
        RuleFailure("rapid-transactions", "ZeroDivisionError: division by zero"),
    )
    assert rules.verdict(outcome.hits).risk_score == 60


def test_the_version_names_the_rules() -> None:
    assert _rules().version == _rules().version
    moved = _rules(params={"large-amount": {"threshold_usd": "5000"}})
    assert moved.version != _rules().version
    built = RuleSet(shipped_rules().specs)  # not from a file: a hash of the specs
    assert built.version == RuleSet(shipped_rules().specs).version
