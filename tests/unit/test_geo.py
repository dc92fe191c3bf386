"""The offline gazetteer and great-circle distances."""

from __future__ import annotations

import pytest

from fraud_detection.geo import Coordinates, haversine_km, load_gazetteer, normalize_name


@pytest.fixture(scope="module")
def gazetteer():
    return load_gazetteer()


@pytest.mark.parametrize(
    ("query", "name", "country"),
    [
        ("New York", "New York City", "US"),  # an alternate name
        ("new   YORK", "New York City", "US"),  # case and spacing ignored
        ("Tokyo", "Tokyo", "JP"),
        ("東京", "Tokyo", "JP"),
        ("Москва", "Moscow", "RU"),
        ("London", "London", "GB"),  # most populous of the Londons
        ("London, CA", "London", "CA"),  # country code
        ("London, Canada", "London", "CA"),  # country name
        ("london, uk", "London", "GB"),
        ("Portland, OR", "Portland", "US"),  # US state
        ("New York, NY, USA", "New York City", "US"),
        ("Washington, D.C.", "Washington", "US"),
        ("Newark", "Newark", "US"),
        ("Zurich", "Zürich", "CH"),  # accents optional
        ("Cancún", "Cancún", "MX"),  # a primary name beats a bigger city's alternate name
    ],
)
def test_resolves_names(gazetteer, query: str, name: str, country: str) -> None:
    city = gazetteer.find(query)
    assert city is not None
    assert (city.name, city.country_code) == (name, country)


def test_portland_by_state(gazetteer) -> None:
    oregon, maine = gazetteer.find("Portland, OR"), gazetteer.find("Portland, ME")
    assert oregon is not None and maine is not None
    assert (oregon.admin1_code, maine.admin1_code) == ("OR", "ME")


@pytest.mark.parametrize(
    "query",
    [
        "Narnia Springs",
        "",
        "   ",
        "Mars Base 1",
        ", FR",  # a qualifier and no name
        "Springfield, Tokyo",  # a known region (JP-13) that has no Springfield
        "Paris, Bavaria",
        "Munich, TX",
        "Toronto, NSW",
    ],
)
def test_unknown_places_do_not_resolve(gazetteer, query: str) -> None:
    assert gazetteer.resolve(query) is None
    assert gazetteer.find(query) is None
    assert gazetteer.candidates(query) == ()


def test_haversine_known_distances(gazetteer) -> None:
    new_york, tokyo = gazetteer.resolve("New York"), gazetteer.resolve("Tokyo")
    london, newark = gazetteer.resolve("London"), gazetteer.resolve("Newark")
    assert 10_800 < haversine_km(new_york, tokyo) < 10_900
    assert 5_530 < haversine_km(new_york, london) < 5_600
    assert haversine_km(new_york, newark) < 20
    assert haversine_km(tokyo, tokyo) == 0


def test_haversine_antipodes_and_symmetry() -> None:
    a, b = Coordinates(0.0, 0.0), Coordinates(0.0, 180.0)
    assert haversine_km(a, b) == pytest.approx(20_015, rel=1e-3)
    c, d = Coordinates(48.85, 2.35), Coordinates(-33.87, 151.21)
    assert haversine_km(c, d) == pytest.approx(haversine_km(d, c))


def test_normalize_name() -> None:
    assert normalize_name("  New\tYork  ") == normalize_name("new york") == "new york"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Zu\u0308rich", "Z\u00fcrich"),  # decomposed and composed
        ("STRASSE", "stra\u00dfe"),  # full case folding: ß is ss
        ("\uff34\uff4f\uff4b\uff59\uff4f", "Tokyo"),  # full-width letters
        ("New\t York \n", "new york"),  # tabs, runs of spaces, newlines
        ("S\u00e3o\u00a0Paulo", "s\u00e3o paulo"),  # no-break space
        ("\ufb01nland", "Finland"),  # the fi ligature
    ],
)
def test_normalize_name_equates(a: str, b: str) -> None:
    assert normalize_name(a) == normalize_name(b)


@pytest.mark.parametrize("text", ["\u01f0", "Zu\u0308rich", "STRASSE", "\u1e9e", "  x\ty  "])
def test_normalize_name_is_a_fixed_point(text: str) -> None:
    once = normalize_name(text)
    assert normalize_name(once) == once


def test_loaded_once_per_process() -> None:
    assert load_gazetteer() is load_gazetteer()
