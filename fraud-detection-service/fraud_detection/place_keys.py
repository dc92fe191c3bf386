"""The key a place is remembered by in the user's places (the new-location rule).

A resolved place (explicit coordinates or a gazetteer reading) is its latitude and
longitude rounded to 2 decimals (about 1 km): ``geo:40.71,-74.01``. Two readings in the
same cell are one place; two a few metres apart across a cell edge are two. An
unresolved place is its name as names compare (NFKC, case folding, whitespace
collapsed): ``name:xqzzy nowhere``. The prefixes keep the two kinds apart.
"""

from __future__ import annotations

from fraud_detection.geo import Coordinates, normalize_name


def _degrees(value: float) -> str:
    text = f"{value:.2f}"  # correctly rounded from the float's exact binary value
    return "0.00" if text == "-0.00" else text


def coordinates_key(coordinates: Coordinates) -> str:
    return f"geo:{_degrees(coordinates.latitude)},{_degrees(coordinates.longitude)}"


def name_key(name: str) -> str:
    return f"name:{normalize_name(name)}"
