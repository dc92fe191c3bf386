"""Rapid transactions: more than ``max_count`` of the user's transactions (this one
included) in some window of ``window_seconds`` that contains this one, by event time,
whatever order they arrived in.

Windows are half-open, ``(end - window, end]``. In order, the window that matters ends
at this transaction, ``(t - window, t]``: with the defaults the 6th transaction within
30 s alerts, and so does every later one while the window still holds more than 5; a
transaction leaves the window 30 s after its event time. That window is tried first,
and when it fires the alert describes it (``"late": false``).

A late transaction (one whose event time is before transactions that arrived first)
may also complete a window that ends after it. The busiest window containing ``t`` ends
at one of the user's event times ``e`` with ``t <= e < t + window`` (sliding a window's
end down to its newest member loses nothing), so those are the ends tried. When only
such a window fires, the alert describes the busiest one (the earliest of equals) and
says ``"late": true``. ``late`` is always present in the details, true or false.

Event times are compared at millisecond resolution, as the state keeps them.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from datetime import datetime, timedelta

from pydantic import Field

from fraud_common.jsonutil import isoformat_utc
from fraud_detection.rules.base import EvaluationContext, Finding, RuleParams, RuleType

ALERT_TYPE = "multiple_rapid_transactions_detected"


class Params(RuleParams):
    max_count: int = Field(default=5, ge=1, description="more than this many alert")
    window_seconds: int = Field(default=30, ge=1, le=7 * 24 * 3600)

    @property
    def lookback(self) -> timedelta:
        return timedelta(seconds=self.window_seconds)


def _window(times: Sequence[datetime], end: datetime, width: timedelta) -> Sequence[datetime]:
    """The members of ``(end - width, end]`` in ``times`` (sorted)."""
    return times[bisect_right(times, end - width) : bisect_right(times, end)]


def evaluate(context: EvaluationContext, params: Params) -> Finding | None:
    if len(context.recent_event_times) + len(context.later_event_times) <= params.max_count:
        return None  # no window holds more than all of them (nearly every transaction)
    now = context.transaction.timestamp
    now = now.replace(microsecond=now.microsecond // 1000 * 1000)  # the store keeps ms
    width = params.lookback
    times = context.window_event_times
    end, in_window, late = now, _window(times, now, width), False
    if len(in_window) <= params.max_count:
        later_ends = sorted({t for t in times if now < t < now + width})
        busiest = max(
            ((e, _window(times, e, width)) for e in later_ends),
            key=lambda window: len(window[1]),
            default=None,
        )
        if busiest is None or len(busiest[1]) <= params.max_count:
            return None
        (end, in_window), late = busiest, True
    count = len(in_window)
    return Finding(
        details={
            "count": count,
            "time_window": params.window_seconds,
            "threshold_count": params.max_count,
            "threshold_time": params.window_seconds,
            "first_in_window": isoformat_utc(in_window[0]),
            "window_end": isoformat_utc(end),
            "late": late,
        },
        message=(
            f"{count} transactions within {params.window_seconds} s (more than {params.max_count})"
            + (", counting later transactions that arrived first" if late else "")
        ),
    )


RULE = RuleType(
    name="rapid_transactions",
    params=Params,
    evaluate=evaluate,
    alert_type=ALERT_TYPE,
    lookback=lambda params: params.lookback,
)
