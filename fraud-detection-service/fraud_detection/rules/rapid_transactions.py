"""Rapid transactions: more than ``max_count`` transactions of the user in the window
that ends at this one, by event time (this one included).

The window is half-open, ``(t - window, t]``: with the defaults the 6th transaction
within 30 s alerts, and so does every later one while the window still holds more
than 5; a transaction leaves the window 30 s after its event time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from fraud_common.jsonutil import isoformat_utc
from fraud_detection.rules.base import EvaluationContext, Finding

ALERT_TYPE = "multiple_rapid_transactions_detected"


@dataclass(frozen=True)
class Params:
    max_count: int = 5
    window_seconds: int = 30

    @property
    def lookback(self) -> timedelta:
        return timedelta(seconds=self.window_seconds)


def evaluate(context: EvaluationContext, params: Params) -> Finding | None:
    now = context.transaction.timestamp
    now = now.replace(microsecond=now.microsecond // 1000 * 1000)  # the store keeps ms
    start = now - params.lookback
    in_window = [t for t in context.recent_event_times if start < t <= now]
    count = len(in_window)
    if count <= params.max_count:
        return None
    return Finding(
        details={
            "count": count,
            "time_window": params.window_seconds,
            "threshold_count": params.max_count,
            "threshold_time": params.window_seconds,
            "first_in_window": isoformat_utc(min(in_window)),
            "window_end": isoformat_utc(now),
        },
        message=(
            f"{count} transactions within {params.window_seconds} s (more than {params.max_count})"
        ),
    )
