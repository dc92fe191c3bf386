"""New location: a place the user has not used within ``lookback_days``, when the user has
history; places keyed by rounded coordinates, else by the normalised name."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from fraud_common.jsonutil import isoformat_utc
from fraud_detection.geo import Coordinates
from fraud_detection.place_keys import coordinates_key, name_key
from fraud_detection.rules import new_location
from fraud_detection.rules.base import PlaceHistory
from tests.support.detector_factories import T0, transaction
from tests.support.window_contexts import window_context

PARAMS = new_location.Params(lookback_days=30)
NOW = T0 + timedelta(days=100)


def _evaluate(history: PlaceHistory | None, location: str = "Lisbon") -> object:
    txn = transaction(at=NOW, location=location)
    return new_location.evaluate(window_context(txn, place_history=history), PARAMS)


def test_the_first_transaction_ever_does_not_fire() -> None:
    assert _evaluate(PlaceHistory("name:lisbon", None, has_history=False)) is None


def test_without_kept_places_the_rule_is_silent() -> None:
    assert _evaluate(None) is None


def test_the_same_place_within_the_lookback_does_not_fire() -> None:
    for ago in (timedelta(0), timedelta(days=1), timedelta(days=30) - timedelta(milliseconds=1)):
        assert _evaluate(PlaceHistory("name:lisbon", NOW - ago, has_history=True)) is None


def test_a_place_used_later_that_arrived_first_is_not_new() -> None:
    assert _evaluate(PlaceHistory("name:lisbon", NOW + timedelta(hours=1), True)) is None


def test_a_new_place_with_history_fires() -> None:
    finding = new_location.evaluate(
        window_context(
            transaction(at=NOW, location="Lisbon"),
            place_history=PlaceHistory("name:lisbon", None, has_history=True),
        ),
        PARAMS,
    )
    assert finding is not None
    assert finding.details == {"location": "Lisbon", "lookback_days": 30, "last_used": None}
    assert "Lisbon" in finding.message and "30 days" in finding.message


@pytest.mark.parametrize("ago", [timedelta(days=30), timedelta(days=31), timedelta(days=99)])
def test_a_place_last_used_longer_ago_than_the_lookback_fires(ago: timedelta) -> None:
    last = NOW - ago
    finding = new_location.evaluate(
        window_context(
            transaction(at=NOW, location="Lisbon"),
            place_history=PlaceHistory("name:lisbon", last, has_history=True),
        ),
        PARAMS,
    )
    assert finding is not None
    assert finding.details["last_used"] == isoformat_utc(last)


def test_place_keys_of_explicit_coordinates_round_to_two_decimals() -> None:
    assert coordinates_key(Coordinates(40.712775, -74.005973)) == "geo:40.71,-74.01"
    assert coordinates_key(Coordinates(40.7149, -74.0051)) == "geo:40.71,-74.01"  # same cell
    assert coordinates_key(Coordinates(40.7151, -74.0051)) == "geo:40.72,-74.01"
    assert coordinates_key(Coordinates(-0.001, -0.004)) == "geo:0.00,0.00"  # no "-0.00"
    assert coordinates_key(Coordinates(-33.8688, 151.2093)) == "geo:-33.87,151.21"


def test_place_keys_of_names_compare_normalised() -> None:
    assert name_key("  Xqzzy   NOWHERE ") == name_key("xqzzy nowhere") == "name:xqzzy nowhere"
    fullwidth = "\uff33\uff34\uff32\uff21\uff33\uff33\uff25"  # "STRASSE" in fullwidth
    assert name_key(fullwidth) == name_key("strasse")  # NFKC + case folding
    assert name_key("Straße") == name_key("STRASSE")


@pytest.mark.parametrize("values", [{"lookback_days": 0}, {}, {"lookback_days": 5, "x": 1}])
def test_params_are_validated(values: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        new_location.Params.model_validate(values)


def test_rule_type_looks_back_in_places_not_in_the_window() -> None:
    rule = new_location.RULE
    assert (rule.name, rule.alert_type) == ("new_location", "new_location_detected")
    assert rule.lookback(PARAMS) == timedelta(0)
    assert rule.places_lookback(PARAMS) == timedelta(days=30)
    assert rule.retention_of(PARAMS) == timedelta(days=30)
