"""Location change: travel from the user's previous transaction that nobody can make.

When both places have coordinates (explicit latitude/longitude, else the name resolved
offline), the rule fires if the great-circle distance is at least ``min_distance_km``
and the implied speed is above ``max_speed_kmh`` (two transactions at the same instant
in distant places count as infinitely fast). When either place cannot be resolved, it
fires if the place names differ (case and spacing ignored) and the transactions are at
most ``name_window_seconds`` apart. The same place never fires.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field

from fraud_common.jsonutil import isoformat_utc
from fraud_detection.geo import Coordinates, haversine_km, normalize_name
from fraud_detection.rules.base import (
    EvaluationContext,
    Finding,
    Place,
    PreviousTransaction,
    RuleParams,
    RuleType,
)

ALERT_TYPE = "unusual_location_change_detected"


class Params(RuleParams):
    min_distance_km: float = Field(default=100.0, ge=0, allow_inf_nan=False)
    max_speed_kmh: float = Field(default=900.0, gt=0, allow_inf_nan=False)
    name_window_seconds: int = Field(
        default=3600, ge=0, description="unresolved places: different names this close alert"
    )


def _coordinates(value: Coordinates | None) -> dict[str, float] | None:
    if value is None:
        return None
    return {"latitude": value.latitude, "longitude": value.longitude}


def _details(previous: PreviousTransaction, here: Place, elapsed: float) -> dict[str, object]:
    """What every finding says; built only for a finding (nearly every call has none)."""
    return {
        "previous_location": previous.place.name,
        "current_location": here.name,
        "previous_timestamp": isoformat_utc(previous.event_time),
        "previous_transaction_id": previous.transaction_id,
        "elapsed_seconds": round(elapsed, 3),
    }


def evaluate(context: EvaluationContext, params: Params) -> Finding | None:
    previous = context.previous
    if previous is None:
        return None
    here, there = context.place, previous.place
    elapsed = abs((context.transaction.timestamp - previous.event_time).total_seconds())

    if here.coordinates is not None and there.coordinates is not None:
        distance = haversine_km(there.coordinates, here.coordinates)
        speed = distance / (elapsed / 3600) if elapsed > 0 else None
        impossible = distance >= params.min_distance_km and (
            speed is None or speed > params.max_speed_kmh
        )
        if not impossible:
            return None
        pace = "at the same instant" if speed is None else f"at {speed:,.0f} km/h"
        return Finding(
            details=_details(previous, here, elapsed)
            | {
                "method": "distance",
                "distance_km": round(distance, 1),
                "speed_kmh": None if speed is None else round(speed, 1),
                "threshold_distance_km": params.min_distance_km,
                "threshold_speed_kmh": params.max_speed_kmh,
                "previous_coordinates": _coordinates(there.coordinates),
                "current_coordinates": _coordinates(here.coordinates),
            },
            message=(
                f"{there.name} -> {here.name}: {distance:,.0f} km in {elapsed:,.0f} s "
                f"({pace}, above {params.max_speed_kmh:,.0f} km/h)"
            ),
        )
    if normalize_name(here.name) == normalize_name(there.name):
        return None
    if elapsed > params.name_window_seconds:
        return None
    return Finding(
        details=_details(previous, here, elapsed)
        | {
            "method": "name",
            "threshold_time": params.name_window_seconds,
            "unresolved": [p.name for p in (there, here) if p.coordinates is None],
        },
        message=(
            f"{there.name} -> {here.name} within {elapsed:,.0f} s "
            f"(a place could not be located; different places within "
            f"{params.name_window_seconds} s)"
        ),
    )


EARTH_HALF_CIRCUMFERENCE_KM = 20037.5
"""The farthest two places on Earth can be apart along the surface."""


def retention(params: Params) -> timedelta:
    """The previous place matters as long as any trip from it could still be impossible
    (the slowest: half the Earth at the maximum speed), and through the name window."""
    longest_trip = timedelta(hours=EARTH_HALF_CIRCUMFERENCE_KM / params.max_speed_kmh)
    return max(longest_trip, timedelta(seconds=params.name_window_seconds)) + timedelta(seconds=1)


RULE = RuleType(
    name="location_change",
    params=Params,
    evaluate=evaluate,
    alert_type=ALERT_TYPE,
    retention=retention,
)
