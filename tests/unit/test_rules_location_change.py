"""Location change: impossible travel from the previous transaction."""

from __future__ import annotations

from datetime import timedelta

from fraud_detection.geo import Coordinates
from fraud_detection.rules import Place, location_change
from tests.support.detector_factories import T0, context, resolved, transaction

PARAMS = location_change.Params(min_distance_km=100, max_speed_kmh=900, name_window_seconds=3600)
UNKNOWN = "Narnia Springs"


def _check(previous: Place, current: Place, seconds: float):
    txn = transaction(location=current.name, at=T0 + timedelta(seconds=seconds))
    return location_change.evaluate(context(txn, place=current, previous=(previous, T0)), PARAMS)


def test_new_york_to_tokyo_in_2s_alerts() -> None:
    finding = _check(resolved("New York"), resolved("Tokyo"), 2)
    assert finding is not None
    assert finding.details["previous_location"] == "New York"
    assert finding.details["current_location"] == "Tokyo"
    assert finding.details["method"] == "distance"
    assert 10_800 < finding.details["distance_km"] < 10_900
    assert finding.details["speed_kmh"] > 900


def test_new_york_to_london_after_10h_does_not_alert() -> None:
    assert _check(resolved("New York"), resolved("London"), 10 * 3600) is None


def test_new_york_to_london_in_5h_is_too_fast() -> None:
    assert _check(resolved("New York"), resolved("London"), 5 * 3600) is not None  # ~1114 km/h


def test_new_york_to_newark_does_not_alert() -> None:
    assert _check(resolved("New York"), resolved("Newark"), 1) is None  # under 100 km


def test_same_instant_far_apart_alerts_without_a_speed() -> None:
    finding = _check(resolved("New York"), resolved("Tokyo"), 0)
    assert finding is not None
    assert finding.details["speed_kmh"] is None


def test_unknown_place_falls_back_to_the_name_rule() -> None:
    assert resolved(UNKNOWN).coordinates is None
    finding = _check(resolved("New York"), resolved(UNKNOWN), 600)
    assert finding is not None
    assert finding.details["method"] == "name"
    assert finding.details["unresolved"] == [UNKNOWN]
    assert _check(resolved(UNKNOWN), resolved("New York"), 3600) is not None  # 1 h: in
    assert _check(resolved(UNKNOWN), resolved("New York"), 3601) is None  # past 1 h


def test_same_name_in_another_case_or_spacing_does_not_alert() -> None:
    assert _check(resolved(UNKNOWN), resolved("  narnia   SPRINGS "), 1) is None
    assert _check(resolved("New York"), resolved("new york"), 1) is None
    assert _check(resolved("New York"), resolved("New York"), 0) is None


def test_explicit_coordinates_win_over_the_name() -> None:
    tokyo = resolved("Tokyo").coordinates
    new_york = resolved("New York").coordinates
    assert tokyo is not None and new_york is not None
    # Called "New York" both times, but the card was in Tokyo: coordinates decide.
    assert _check(resolved("New York"), Place("New York", tokyo), 2) is not None
    # Names differ, coordinates are the same spot: no alert.
    assert _check(Place("Home", new_york), Place("Office", new_york), 2) is None
    # An unknown name with explicit coordinates is located, so no name fallback.
    assert _check(resolved("New York"), Place(UNKNOWN, Coordinates(40.73, -74.17)), 2) is None


def test_no_previous_transaction_no_alert() -> None:
    txn = transaction(location="Tokyo")
    assert location_change.evaluate(context(txn), PARAMS) is None


def test_a_late_event_uses_the_absolute_time_difference() -> None:
    txn = transaction(location="Tokyo", at=T0 - timedelta(seconds=2))
    ctx = context(txn, previous=(resolved("New York"), T0))
    assert location_change.evaluate(ctx, PARAMS) is not None
