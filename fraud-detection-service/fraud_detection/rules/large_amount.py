"""Large amount: the amount converted to USD is strictly greater than the threshold."""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field

from fraud_detection.rules.base import EvaluationContext, Finding, RuleParams, RuleType

ALERT_TYPE = "large_transaction_detected"


class Params(RuleParams):
    threshold_usd: Decimal = Field(
        default=Decimal("10000"), gt=0, allow_inf_nan=False, description="strictly above alerts"
    )


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


RULE = RuleType(name="large_amount", params=Params, evaluate=evaluate, alert_type=ALERT_TYPE)
