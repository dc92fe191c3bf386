"""Card testing: at least ``min_count`` of the user's transactions, each of at most
``max_amount_usd`` (exactly that much counts), within ``window_seconds`` of event time,
in some window that contains this transaction, whatever order they arrived in
(`windows`; ``"late": true`` when only a window counting later transactions that
arrived first has enough).

This transaction need not be a small one itself: a large charge right after a run of
small probes is the pattern's payoff, and is flagged too. Amounts compare exactly, in
micro-USD (`fraud_detection.usd_micros`); an entry whose amount the state does not know
(stored before amounts were) is not counted as small.
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
from fraud_detection.usd_micros import exceeds

ALERT_TYPE = "card_testing_detected"


class Params(RuleParams):
    max_amount_usd: Decimal = Field(
        gt=0, allow_inf_nan=False, description="transactions of at most this much count"
    )
    min_count: int = Field(ge=1, description="this many small ones alert")
    window_seconds: int = Field(ge=1, le=7 * 24 * 3600)

    @property
    def lookback(self) -> timedelta:
        return timedelta(seconds=self.window_seconds)

    def small(self, entries: Sequence[WindowEntry]) -> int:
        """How many of ``entries`` are of at most ``max_amount_usd``."""
        return sum(
            1
            for e in entries
            if e.amount_usd_micros is not None
            and not exceeds(e.amount_usd_micros, self.max_amount_usd)
        )


def evaluate(context: EvaluationContext, params: Params) -> Finding | None:
    found = breaking_window(
        context.window_entries,
        to_ms(context.transaction.timestamp),
        params.lookback,
        params.small,
        lambda count: count >= params.min_count,
    )
    if found is None:
        return None
    _, members, late = found
    count = params.small(members)
    return Finding(
        details={
            "count": count,
            "min_count": params.min_count,
            "max_amount_usd": params.max_amount_usd,
            "window_seconds": params.window_seconds,
            "late": late,
        },
        message=(
            f"{count} transactions of at most {params.max_amount_usd} USD within "
            f"{params.window_seconds} s (at least {params.min_count} alert)"
            + (", counting later transactions that arrived first" if late else "")
        ),
    )


RULE = RuleType(
    name="card_testing",
    params=Params,
    evaluate=evaluate,
    alert_type=ALERT_TYPE,
    lookback=lambda params: params.lookback,
)
