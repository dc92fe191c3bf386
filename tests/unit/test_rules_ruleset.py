"""The rule set built from settings, its verdict and its extension points."""

from __future__ import annotations

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
)
from fraud_detection.settings import DetectorSettings
from tests.support.detector_factories import T0, context, resolved, transaction


def _settings(**overrides) -> DetectorSettings:
    return DetectorSettings(
        kafka_bootstrap_servers="localhost:9", redis_url="redis://localhost:1/0", **overrides
    )


def test_defaults_are_the_contract_numbers() -> None:
    settings = _settings()
    assert settings.port == 5000
    assert settings.consumer_group == "fraud-detection-group"
    assert settings.large_amount_threshold_usd == Decimal("10000")
    assert (settings.rapid_max_count, settings.rapid_window_seconds) == (5, 30)
    assert settings.location_min_distance_km == 100
    assert settings.location_max_speed_kmh == 900
    assert settings.location_name_window_seconds == 3600


def test_numbers_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "broker:9092")
    monkeypatch.setenv("REDIS_URL", "redis://r:6379/0")
    monkeypatch.setenv("LARGE_AMOUNT_THRESHOLD_USD", "500.50")
    monkeypatch.setenv("RAPID_MAX_COUNT", "3")
    settings = DetectorSettings()
    assert settings.large_amount_threshold_usd == Decimal("500.50")
    assert settings.rapid_max_count == 3


def test_user_state_outlives_the_slowest_impossible_trip() -> None:
    # Half the Earth at 900 km/h takes ~22 h: state younger than that still matters.
    assert _settings(user_state_ttl_seconds=60).user_state_ttl > 22 * 3600
    assert _settings(user_state_ttl_seconds=60, location_max_speed_kmh=100).user_state_ttl > (
        200 * 3600
    )


def test_window_must_hold_more_than_the_threshold() -> None:
    with pytest.raises(ValueError, match="WINDOW_MAX_ENTRIES"):
        _settings(window_max_entries=5)


def test_all_three_rules_fire_together() -> None:
    rules = RuleSet.from_settings(_settings())
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
    assert verdict.status == "review"
    assert 70 < verdict.risk_score <= 100


def test_a_clean_transaction_is_approved_with_score_zero() -> None:
    rules = RuleSet.from_settings(_settings())
    hits = rules.evaluate(context(transaction())).hits
    assert hits == ()
    verdict = rules.verdict(hits)
    assert (verdict.status, verdict.risk_score) == ("approve", 0)


def test_scores_combine_without_exceeding_100() -> None:
    hit = lambda score: RuleHit("r", "t", "high", score)  # noqa: E731
    assert RuleSet.verdict([hit(60)]).risk_score == 60
    assert RuleSet.verdict([hit(60), hit(40)]).risk_score == 76
    assert RuleSet.verdict([hit(100), hit(100)]).risk_score == 100


def test_lookback_is_the_longest_window() -> None:
    assert RuleSet.from_settings(_settings(rapid_window_seconds=45)).lookback == timedelta(
        seconds=45
    )


def test_a_disabled_rule_does_not_fire() -> None:
    spec = RuleSpec(
        "large-amount",
        "large_amount",
        large_amount.ALERT_TYPE,
        large_amount.Params(Decimal("1")),
        enabled=False,
    )
    assert RuleSet([spec]).evaluate(context(transaction(amount="5"))).hits == ()


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
                RuleSpec("r", "large_amount", "y", large_amount.Params()),
            ]
        )


def test_a_rule_that_raises_is_isolated_and_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug in one rule costs that rule its say on this transaction, nothing more."""

    def broken(context, params):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setitem(
        RULE_TYPES, "rapid_transactions", (broken, RULE_TYPES["rapid_transactions"][1])
    )
    rules = RuleSet.from_settings(_settings())
    outcome = rules.evaluate(context(transaction(amount="20000")))
    assert [h.rule_id for h in outcome.hits] == ["large-amount"]
    assert outcome.failures == (
        RuleFailure("rapid-transactions", "ZeroDivisionError: division by zero"),
    )
    assert rules.verdict(outcome.hits).risk_score == 60


def test_the_version_names_the_rules() -> None:
    assert RuleSet.from_settings(_settings()).version == RuleSet.from_settings(_settings()).version
    moved = RuleSet.from_settings(_settings(large_amount_threshold_usd=Decimal("5000")))
    assert moved.version != RuleSet.from_settings(_settings()).version
