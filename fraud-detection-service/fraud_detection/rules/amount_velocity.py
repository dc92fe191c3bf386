"""Amount velocity: the user's USD total within ``window_seconds`` of event time (this
transaction included) is strictly above ``limit_usd``, in some window that contains
this transaction, whatever order the transactions arrived in (`windows`; ``"late":
true`` when only a window counting later transactions that arrived first breaks it).

Amounts are summed exactly, as integer micro-USD (`fraud_detection.usd_micros`): a total
of exactly the limit does not fire, one micro-USD more does. An entry whose amount the
state does not know (stored before amounts were) adds nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal

from pydantic import Field

from fraud_detection.rules.base import (
    EvaluationContext,
    Finding,
    RuleParams,
    RuleType,
    WindowEntry,
)
from fraud_detection.rules.windows import breaking_window, to_ms
from fraud_detection.usd_micros import exceeds, from_micros

ALERT_TYPE = "amount_velocity_detected"


class Params(RuleParams):
    limit_usd: Decimal = Field(gt=0, allow_inf_nan=False, description="a total above alerts")
    window_seconds: int = Field(ge=1, le=7 * 24 * 3600)

    @property
    def lookback(self) -> timedelta:
        return timedelta(seconds=self.window_seconds)


def total_micros(entries: Sequence[WindowEntry]) -> int:
    return sum(e.amount_usd_micros or 0 for e in entries)


def evaluate(context: EvaluationContext, params: Params) -> Finding | None:
    found = breaking_window(
        context.window_entries,
        to_ms(context.transaction.timestamp),
        params.lookback,
        total_micros,
        lambda total: exceeds(total, params.limit_usd),
    )
    if found is None:
        return None
    _, members, late = found
    total = from_micros(total_micros(members))
    return Finding(
        details={
            "total_usd": total,
            "limit_usd": params.limit_usd,
            "window_seconds": params.window_seconds,
            "count": len(members),
            "late": late,
        },
        message=(
            f"{total} USD in {len(members)} transactions within {params.window_seconds} s "
            f"is above the {params.limit_usd} USD limit"
            + (", counting later transactions that arrived first" if late else "")
        ),
    )


RULE = RuleType(
    name="amount_velocity",
    params=Params,
    evaluate=evaluate,
    alert_type=ALERT_TYPE,
    lookback=lambda params: params.lookback,
)
