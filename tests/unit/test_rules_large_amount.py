"""Large amount: the USD value strictly above the threshold (10,000 by default)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from fraud_detection.rules import large_amount
from tests.support.detector_factories import context, transaction

PARAMS = large_amount.Params(threshold_usd=Decimal("10000"))


@pytest.mark.parametrize(
    ("amount", "currency", "fires"),
    [
        ("10000", "USD", False),  # exactly the threshold does not alert
        ("10000.00", "USD", False),
        ("10000.01", "USD", True),
        ("9999.99", "USD", False),
        ("15000", "USD", True),
        ("9260", "EUR", True),  # 9260 EUR = 10000.80 USD at 1.08
        ("9259", "EUR", False),  # 9259 EUR = 9999.72 USD
        ("1500000", "JPY", True),  # 1.5 M JPY = 10050 USD at 0.0067
        ("1492537", "JPY", False),  # 9999.9979 USD
    ],
)
def test_threshold_in_usd(amount: str, currency: str, fires: bool) -> None:
    txn = transaction(amount=amount, currency=currency)
    assert (large_amount.evaluate(context(txn), PARAMS) is not None) is fires


def test_conversion_is_exact_decimal() -> None:
    # 0.1 + 0.2 style: 9259.2592592 EUR is 9999.999999936 USD, which binary floats could
    # round up to 10000; Decimal keeps it below.
    txn = transaction(amount="9259.2592592", currency="EUR")
    assert large_amount.evaluate(context(txn), PARAMS) is None


def test_details_keep_original_field_and_explain() -> None:
    txn = transaction(amount="9300", currency="EUR")
    finding = large_amount.evaluate(context(txn), PARAMS)
    assert finding is not None
    assert finding.details["threshold"] == Decimal("10000")
    assert finding.details["amount_usd"] == Decimal("10044.00")
    assert finding.details["currency"] == "EUR"
    assert "10044.00 USD" in finding.message


def test_threshold_is_configurable() -> None:
    txn = transaction(amount="600")
    assert (
        large_amount.evaluate(context(txn), large_amount.Params(threshold_usd=Decimal("500")))
        is not None
    )
