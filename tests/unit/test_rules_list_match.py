"""List match: fires when the context says the (list, field) pair is listed, and only
that pair; with ``effect: allow`` a hit approves the transaction and silences the rest."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from fraud_detection.rules import RuleSet, RuleSpec, large_amount, list_match
from fraud_detection.rules.registry import RULE_TYPES
from tests.support.detector_factories import context, transaction


def params(name: str = "blocked-users", field: str = "userId") -> list_match.Params:
    return list_match.Params.model_validate({"list": name, "field": field})


def test_registered_under_its_name() -> None:
    assert RULE_TYPES["list_match"] is list_match.RULE
    assert RULE_TYPES["list_match"].params is list_match.Params


def test_fires_with_the_value_in_details() -> None:
    txn = transaction(user="mallory")
    listed = context(txn)._replace(listed=frozenset({("blocked-users", "userId")}))
    finding = list_match.evaluate(listed, params())
    assert finding is not None
    assert finding.details == {"list": "blocked-users", "field": "userId", "value": "mallory"}
    assert "mallory" in finding.message and "blocked-users" in finding.message


def test_silent_when_nothing_is_listed() -> None:
    assert list_match.evaluate(context(transaction()), params()) is None


@pytest.mark.parametrize(
    "listed",
    [
        ("other-list", "userId"),  # the same field on another list
        ("blocked-users", "location"),  # the same list, another field
    ],
)
def test_pairs_do_not_mix(listed: tuple[str, str]) -> None:
    ctx = context(transaction())._replace(listed=frozenset({listed}))
    assert list_match.evaluate(ctx, params("blocked-users", "userId")) is None


@pytest.mark.parametrize("field", ["userId", "location", "currency", "transactionId"])
def test_every_string_field(field: str) -> None:
    txn = transaction(user="u-9", location="Paris", currency="EUR")
    ctx = context(txn)._replace(listed=frozenset({("l", field)}))
    finding = list_match.evaluate(ctx, params("l", field))
    assert finding is not None
    assert finding.details["value"] == str(getattr(txn, field))


@pytest.mark.parametrize(
    "values",
    [
        {"list": "Blocked", "field": "userId"},  # upper case
        {"list": "", "field": "userId"},
        {"list": "x" * 65, "field": "userId"},
        {"list": "a b", "field": "userId"},
        {"list": "ok", "field": "amount"},  # not a string field
        {"list": "ok"},
        {"list": "ok", "field": "userId", "extra": 1},
    ],
)
def test_params_are_validated(values: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        list_match.Params.model_validate(values)


def _rules() -> RuleSet:
    return RuleSet(
        [
            RuleSpec(
                "large-amount",
                "large_amount",
                "large_transaction_detected",
                large_amount.Params(threshold_usd=Decimal("10000")),
                score=90,
            ),
            RuleSpec(
                "trusted-users",
                "list_match",
                "trusted_user",
                params("trusted", "userId"),
                score=0,
                effect="allow",
            ),
            RuleSpec(
                "blocked-places",
                "list_match",
                "blocked_place",
                params("blocked", "location"),
                score=85,
            ),
        ]
    )


def test_allow_hit_approves_and_silences_the_other_rules() -> None:
    rules = _rules()
    txn = transaction(amount="50000", location="Casino")
    blocked = frozenset({("blocked", "location")})
    hits = rules.evaluate(context(txn)._replace(listed=blocked))
    assert sorted(h.rule_id for h in hits.hits) == ["blocked-places", "large-amount"]
    assert rules.verdict(hits.hits).status == "decline"

    trusted = rules.evaluate(context(txn)._replace(listed=blocked | {("trusted", "userId")}))
    assert trusted.allowed_by == "trusted-users"
    assert trusted.hits == ()
    assert rules.verdict(trusted.hits).status == "approve"
