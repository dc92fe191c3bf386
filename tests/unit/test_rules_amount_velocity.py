"""Amount velocity: the user's USD total in a window of ``window_seconds`` containing this
transaction (this one included) strictly above ``limit_usd``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal

import pytest
from pydantic import ValidationError

from fraud_detection.rules import amount_velocity
from tests.support.detector_factories import T0, transaction
from tests.support.window_contexts import sequence, window_context

PARAMS = amount_velocity.Params(limit_usd=Decimal("100"), window_seconds=60)


def _alerting(
    amounts: Sequence[tuple[float, str]], params: amount_velocity.Params = PARAMS
) -> list[int]:
    return [
        i + 1
        for i, (_, context) in enumerate(sequence(amounts))
        if amount_velocity.evaluate(context, params) is not None
    ]


def test_exactly_the_limit_does_not_fire_one_micro_usd_more_does() -> None:
    assert _alerting([(0, "60"), (1, "40")]) == []
    assert _alerting([(0, "60"), (1, "40.000001")]) == [2]
    assert _alerting([(0, "33.333333"), (1, "66.666667"), (2, "0.000001")]) == [3]
    assert _alerting([(0, "100")]) == []
    assert _alerting([(0, "100.01")]) == [1]


def test_details_describe_the_window_ending_here() -> None:
    (_, _), (_, context) = sequence([(0, "60"), (1, "40.50")])
    finding = amount_velocity.evaluate(context, PARAMS)
    assert finding is not None
    assert finding.details == {
        "total_usd": Decimal("100.50"),
        "limit_usd": Decimal("100"),
        "window_seconds": 60,
        "count": 2,
        "late": False,
    }
    assert str(finding.details["total_usd"]) == "100.50"
    assert "100.50 USD in 2 transactions within 60 s" in finding.message


def test_window_is_half_open() -> None:
    assert _alerting([(0, "60"), (60, "41")]) == []  # exactly 60 s before: out
    assert _alerting([(0.001, "60"), (60, "41")]) == [2]


def test_totals_slide_with_the_window() -> None:
    # 30 USD every 20 s: (t - 60, t] holds three (90) ... never four.
    assert _alerting([(20 * i, "30") for i in range(8)]) == []
    # Every 15 s: four from the 4th on (120 > 100).
    assert _alerting([(15 * i, "30") for i in range(8)]) == [4, 5, 6, 7, 8]


def test_a_late_transaction_fires_on_later_ones_that_arrived_first() -> None:
    txn = transaction(at=T0, amount="10")
    exactly = [(T0 + timedelta(seconds=s), "30") for s in (10, 20, 30)]  # 100 in all
    assert amount_velocity.evaluate(window_context(txn, exactly), PARAMS) is None
    later = [(T0 + timedelta(seconds=s), "31") for s in (10, 20, 30)]
    finding = amount_velocity.evaluate(window_context(txn, later), PARAMS)
    assert finding is not None
    assert finding.details == {
        "total_usd": Decimal("103.00"),
        "limit_usd": Decimal("100"),
        "window_seconds": 60,
        "count": 4,
        "late": True,
    }
    assert "arrived first" in finding.message


def test_the_window_ending_here_is_described_when_it_fires() -> None:
    txn = transaction(at=T0 + timedelta(seconds=30), amount="10")
    others = [(T0, "95"), (T0 + timedelta(seconds=40), "500")]  # the later one is bigger
    finding = amount_velocity.evaluate(window_context(txn, others), PARAMS)
    assert finding is not None
    assert (finding.details["late"], finding.details["total_usd"]) == (False, Decimal("105.00"))


def test_late_window_must_contain_this_transaction() -> None:
    txn = transaction(at=T0, amount="10")
    # 101 USD, all of it 60 s or more after this one: no window holds both.
    later = [(T0 + timedelta(seconds=s), "50.5") for s in (60, 61)]
    assert amount_velocity.evaluate(window_context(txn, later), PARAMS) is None
    closer = [(T0 + timedelta(seconds=s), "50.5") for s in (59, 59.999)]
    finding = amount_velocity.evaluate(window_context(txn, closer), PARAMS)
    assert finding is not None
    assert finding.details == {
        "total_usd": Decimal("111.00"),
        "limit_usd": Decimal("100"),
        "window_seconds": 60,
        "count": 3,
        "late": True,
    }


def test_unknown_amounts_add_nothing() -> None:
    txn = transaction(at=T0 + timedelta(seconds=5), amount="60")
    assert amount_velocity.evaluate(window_context(txn, [(T0, None)] * 3), PARAMS) is None
    finding = amount_velocity.evaluate(window_context(txn, [(T0, None), (T0, "41")]), PARAMS)
    assert finding is not None
    assert (finding.details["count"], finding.details["total_usd"]) == (3, Decimal("101.00"))


def test_huge_totals_stay_exact() -> None:
    params = amount_velocity.Params(limit_usd=Decimal("2000000000000"), window_seconds=60)
    amounts = [(0, "1000000000000"), (1, "999999999999.999999"), (2, "0.000001"), (3, "0.000001")]
    assert _alerting(amounts, params) == [4]


@pytest.mark.parametrize(
    "values",
    [
        {"limit_usd": "0", "window_seconds": 60},
        {"limit_usd": "-1", "window_seconds": 60},
        {"limit_usd": "NaN", "window_seconds": 60},
        {"limit_usd": "100", "window_seconds": 0},
        {"limit_usd": "100"},
        {"limit_usd": "100", "window_seconds": 60, "extra": 1},
    ],
)
def test_params_are_validated(values: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        amount_velocity.Params.model_validate(values)


def test_rule_type() -> None:
    rule = amount_velocity.RULE
    assert (rule.name, rule.alert_type) == ("amount_velocity", "amount_velocity_detected")
    assert rule.lookback(PARAMS) == timedelta(seconds=60)
    assert amount_velocity.Params.model_validate(
        {"limit_usd": "0.1", "window_seconds": 5}
    ).limit_usd == Decimal("0.1")
