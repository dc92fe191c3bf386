"""Large amount: the amount converted to USD is strictly greater than the threshold."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from fraud_detection.rules.base import EvaluationContext, Finding

ALERT_TYPE = "large_transaction_detected"


@dataclass(frozen=True)
class Params:
    threshold_usd: Decimal = Decimal("10000")


def evaluate(context: EvaluationContext, params: Params) -> Finding | None:
    if not context.amount_usd > params.threshold_usd:
        return None
    txn = context.transaction
    usd = context.amount_usd.quantize(Decimal("0.01"))
    return Finding(
        details={
            "threshold": params.threshold_usd,
            "threshold_currency": "USD",
            "amount": txn.amount,
            "currency": txn.currency,
            "amount_usd": usd,
        },
        message=(
            f"amount {txn.amount} {txn.currency} (= {usd} USD) "
            f"is above the {params.threshold_usd} USD limit"
        ),
    )
