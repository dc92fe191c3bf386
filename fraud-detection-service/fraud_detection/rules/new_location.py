"""New location: the user has history, and this transaction's place is one the user
has not used within the last ``lookback_days`` (by event time).

Places are the state's place keys (`fraud_detection.place_keys`): the chosen coordinates
rounded to 2 decimals when the place resolved, else the normalised name. A place counts
as used when its latest use is strictly less than ``lookback_days`` before this event
time (exactly ``lookback_days`` ago is too long ago), or after it: a late transaction at
a place the user went on to use is not new. The first transaction of a user (no places
yet, or none kept since they expired) never fires, and neither does this rule when the
state kept no places for it (``place_history`` is None).
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field

from fraud_common.jsonutil import isoformat_utc
from fraud_detection.rules.base import EvaluationContext, Finding, RuleParams, RuleType
from fraud_detection.rules.windows import to_ms

ALERT_TYPE = "new_location_detected"


class Params(RuleParams):
    lookback_days: int = Field(ge=1, le=3660, description="a place unused this long is new")

    @property
    def places_lookback(self) -> timedelta:
        return timedelta(days=self.lookback_days)


def evaluate(context: EvaluationContext, params: Params) -> Finding | None:
    history = context.place_history
    if history is None or not history.has_history:
        return None
    since = to_ms(context.transaction.timestamp) - params.places_lookback
    if history.last_used is not None and history.last_used > since:
        return None
    location = context.transaction.location
    last_used = None if history.last_used is None else isoformat_utc(history.last_used)
    return Finding(
        details={
            "location": location,
            "lookback_days": params.lookback_days,
            "last_used": last_used,
        },
        message=(
            f"{location} is a new place for this user (not used in the last "
            f"{params.lookback_days} days"
            + (f"; last used {last_used})" if last_used else "; never used before)")
        ),
    )


RULE = RuleType(
    name="new_location",
    params=Params,
    evaluate=evaluate,
    alert_type=ALERT_TYPE,
    places_lookback=lambda params: params.places_lookback,
    retention=lambda params: params.places_lookback,
)
