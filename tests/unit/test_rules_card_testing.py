"""Card testing: at least ``min_count`` transactions of at most ``max_amount_usd`` each in a
window of ``window_seconds`` containing this transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal

import pytest
from pydantic import ValidationError

from fraud_detection.rules import card_testing
from tests.support.detector_factories import T0, transaction
from tests.support.window_contexts import sequence, window_context

PARAMS = card_testing.Params(max_amount_usd=Decimal("1.00"), min_count=3, window_seconds=60)


def _alerting(amounts: Sequence[tuple[float, str]]) -> list[int]:
    return [
        i + 1
        for i, (_, context) in enumerate(sequence(amounts))
        if card_testing.evaluate(context, PARAMS) is not None
    ]


def test_exactly_max_amount_counts_one_micro_usd_more_does_not() -> None:
    assert _alerting([(0, "1"), (1, "1.00"), (2, "1.000000")]) == [3]
    assert _alerting([(0, "1"), (1, "1.00"), (2, "1.000001")]) == []
    assert _alerting([(0, "0.000001"), (1, "0.5"), (2, "0.999999")]) == [3]


def test_fewer_than_min_count_small_ones_do_not_fire() -> None:
    assert _alerting([(0, "0.10"), (1, "0.20")]) == []
    assert _alerting([(0, "0.10"), (1, "0.20"), (2, "0.30"), (3, "0.40")]) == [3, 4]


def test_a_large_charge_after_the_probes_is_flagged_too() -> None:
    fired = _alerting([(0, "0.10"), (1, "0.20"), (2, "0.30"), (3, "950")])
    assert fired == [3, 4]
    *_, (_, context) = sequence([(0, "0.10"), (1, "0.20"), (2, "0.30"), (3, "950")])
    finding = card_testing.evaluate(context, PARAMS)
    assert finding is not None
    assert finding.details == {
        "count": 3,
        "min_count": 3,
        "max_amount_usd": Decimal("1.00"),
        "window_seconds": 60,
        "late": False,
    }
    assert "3 transactions of at most 1.00 USD within 60 s" in finding.message


def test_window_is_half_open() -> None:
    assert _alerting([(0, "0.5"), (30, "0.5"), (60, "0.5")]) == []  # 0 is out at 60
    assert _alerting([(0.001, "0.5"), (30, "0.5"), (60, "0.5")]) == [3]


def test_a_late_transaction_counts_later_ones_that_arrived_first() -> None:
    txn = transaction(at=T0, amount="0.50")
    later = [(T0 + timedelta(seconds=s), "0.25") for s in (10, 59.999)]
    finding = card_testing.evaluate(window_context(txn, later), PARAMS)
    assert finding is not None
    assert (finding.details["late"], finding.details["count"]) == (True, 3)
    too_far = [(T0 + timedelta(seconds=s), "0.25") for s in (10, 60)]
    assert card_testing.evaluate(window_context(txn, too_far), PARAMS) is None


def test_unknown_amounts_are_not_counted_as_small() -> None:
    txn = transaction(at=T0 + timedelta(seconds=5), amount="0.50")
    assert card_testing.evaluate(window_context(txn, [(T0, None)] * 5), PARAMS) is None
    assert card_testing.evaluate(window_context(txn, [(T0, None), (T0, "0.9"), (T0, "1")]), PARAMS)


@pytest.mark.parametrize(
    "values",
    [
        {"max_amount_usd": "0", "min_count": 3, "window_seconds": 60},
        {"max_amount_usd": "Infinity", "min_count": 3, "window_seconds": 60},
        {"max_amount_usd": "1", "min_count": 0, "window_seconds": 60},
        {"max_amount_usd": "1", "min_count": 3, "window_seconds": 0},
        {"max_amount_usd": "1", "window_seconds": 60},
    ],
)
def test_params_are_validated(values: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        card_testing.Params.model_validate(values)


def test_rule_type() -> None:
    rule = card_testing.RULE
    assert (rule.name, rule.alert_type) == ("card_testing", "card_testing_detected")
    assert rule.lookback(PARAMS) == timedelta(seconds=60)
