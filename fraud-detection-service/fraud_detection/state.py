"""Per-user detection state in Redis, updated by one Lua script call per batch.

For each transaction the script (``scripts/record_batch.lua``) adds it to the
user's window, reads the event times around it and the previous transaction, picks its
coordinates among the place's candidates, stores that snapshot under the transaction's
id and moves the user's "last" on. A second run for the same transaction id returns the
stored snapshot and changes nothing, so a redelivered transaction is evaluated against
exactly the state (and place) it first saw.

Late and out-of-order events: the snapshot holds the user's event times on both sides
of this one, ``(t - lookback, t + lookback)``, so a rule can count windows that end
after ``t`` (transactions with later event times that arrived first). The window keeps
entries back to the user's newest event minus ``lookback + late_allowance``; an event
later than that allowance is still recorded and judged, but only against what remains
(whatever was older than that horizon is gone), and it is then trimmed itself.

Bounds: the window never keeps more than ``max_entries`` transactions (the oldest go
first), and at most ``max_entries`` event times are returned on each side of ``t`` (the
nearest ones). A user with more transactions than that within the retention is judged
on the newest ``max_entries`` only: a window over forgotten transactions counts just
the ones kept. The cap bounds memory and script time per user; keep it well above the
rapid rule's ``max_count``.

Ambiguous places: the entry carries every candidate reading of its place name; the
script picks the one nearest the user's previous place (when there are several and the
previous place has coordinates), else the first, and keeps the choice in the snapshot
and in "last".

Amounts: each window entry carries the transaction's USD value as integer micro-USD
(`fraud_detection.usd_micros`: exact up to 6 decimals, rounded half-even past that),
kept as digits in the member (``"<transactionId>|<micros>"``) and summed only in
Python; the snapshot returns each entry's amount beside its event time. An entry whose
amount is unknown (written before amounts were, or a transaction without a USD value)
is the bare transaction id, and its amount reads as None.

Places (the new-location rule): when the caller asks for them (``places_lookback_ms``),
the user's places are a sorted set of place keys (`fraud_detection.place_keys`) scored
by the latest event time each was used; the snapshot says when this transaction's
place was last used before it (a later use that arrived first counts) and whether the
user had any place at all. Places last used more than ``places_lookback_ms`` plus the
late allowance before the user's newest use are trimmed, and at most ``max_places``
are kept (the least recently used go first). A call without ``places_lookback_ms``
neither reads nor writes them (their snapshot field is None).

TTLs: the window, "last" and the places expire ``user_ttl_seconds`` after the user's
latest transaction: the constructor's value, or a longer one given per call (a rule
that looks back 90 days needs the places kept that long).

A batch is one script call, its entries in consumption order (a user's transactions
share a partition, so their order holds), its input one JSON argument and its answer
one JSON text: a round trip and a few C-speed encodes instead of a command per
transaction. On a Redis Cluster the batch is split by hash slot (every key of a user
shares the user's slot), one call per slot in one pipeline, each in consumption order.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from importlib import resources
from typing import NamedTuple

import orjson
import redis

from fraud_common import keys
from fraud_common.redis_client import run_reloading, slot_groups
from fraud_common.schemas import Transaction
from fraud_detection.geo import Coordinates
from fraud_detection.place_keys import coordinates_key, name_key
from fraud_detection.rules.base import PlaceHistory, WindowEntry
from fraud_detection.usd_micros import to_micros

SCRIPT = resources.files("fraud_detection").joinpath("scripts/record_batch.lua").read_text("utf-8")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)  # built once: a timedelta from keywords costs 0.5 us
DEFAULT_MAX_PLACES = 200


def epoch_ms(value: datetime) -> int:
    """Milliseconds since the epoch, exact (integer arithmetic, no float round-off)."""
    return (value - _EPOCH) // _MILLISECOND


@functools.lru_cache(maxsize=1 << 16)
def from_epoch_ms(value: int) -> datetime:
    """The exact inverse of `epoch_ms` (integer microseconds: no float round-off). Positional
    ``timedelta(0, 0, us)``: a few are built per transaction, and keywords cost more.
    Cached (a datetime is immutable): the batch's evaluation time and the event times of
    a user's window come back transaction after transaction."""
    return _EPOCH + timedelta(0, 0, value * 1000)


class LastSeen(NamedTuple):
    """The user's previous transaction, as the state keeps it."""

    transaction_id: str
    location: str
    coordinates: Coordinates | None
    event_ms: int

    @classmethod
    def from_dict(cls, raw: dict, places: _Places | None = None) -> LastSeen:
        lat, lon = raw.get("latitude"), raw.get("longitude")
        return cls(
            str(raw["transactionId"]),
            str(raw["location"]),
            None if lat is None or lon is None else _coordinates(lat, lon, places),
            int(raw["eventMs"]),
        )


@dataclass(frozen=True, slots=True)
class PlaceUse:
    """This transaction's place in the user's places, as they were before it."""

    key: str
    last_used_ms: int | None
    """The latest event time the place was used at (possibly after this one, for a late
    transaction), None when the user's places do not hold it."""
    has_history: bool
    """Whether the user's places held any place at all."""

    @classmethod
    def from_dict(cls, raw: dict) -> PlaceUse:
        used = raw.get("lastUsedMs")
        return cls(str(raw["key"]), None if used is None else int(used), bool(raw["history"]))


_Places = dict[tuple[float, float], Coordinates]
"""Coordinates already built while parsing one answer, by (latitude, longitude): the
chosen and previous places of a batch are mostly the same few cities. Coordinates are
immutable, so sharing one is the same as building it again."""


def _coordinates(lat: object, lon: object, places: _Places | None) -> Coordinates:
    """``Coordinates(lat, lon)``, the one already built for the same floats if any."""
    if places is None or type(lat) is not float or type(lon) is not float or not lat or not lon:
        return Coordinates(lat, lon)  # type: ignore[arg-type]  # JSON numbers (and 0.0 == -0.0)
    found = places.get((lat, lon))
    if found is None:
        found = places[(lat, lon)] = Coordinates(lat, lon)
    return found


def _chosen(raw: list, places: _Places | None) -> Coordinates:
    lat, lon = raw
    return _coordinates(float(lat), float(lon), places)


def _micros(raw: object, count: int) -> tuple[int | None, ...]:
    """Amounts beside ``count`` event times; all unknown in a snapshot stored before them."""
    if not isinstance(raw, list | tuple) or len(raw) != count:
        return (None,) * count
    if None in raw:
        return tuple(None if m is None else int(m) for m in raw)
    return tuple(map(int, raw))


def _amounts(micros: tuple[int | None, ...], count: int) -> tuple[int | None, ...]:
    """``micros`` as `Snapshot.from_dict` builds them (no copy per evaluation), or all
    unknown when they do not match the ``count`` event times."""
    if type(micros) is tuple and len(micros) == count:
        return micros
    return _micros(micros, count)


class Snapshot(NamedTuple):
    """The state one transaction was evaluated against (a named tuple: one is built per
    transaction, and a tuple builds at a third of a frozen dataclass's cost)."""

    recent_event_ms: tuple[int, ...]  # at or before this one, newest first, this one included
    previous: LastSeen | None
    evaluated_at_ms: int
    replayed: bool
    later_event_ms: tuple[int, ...] = ()
    """Event times after this one (less than the lookback later), oldest first: the
    user's transactions that arrived before this late one."""
    coordinates: Coordinates | None = None
    """The candidate chosen for this transaction's place; None when it had none, or in a
    snapshot stored before candidates were (then the first candidate stands)."""
    recent_micros: tuple[int | None, ...] = ()
    """The USD amounts (micro-USD) of ``recent_event_ms``, index for index; None where
    unknown."""
    later_micros: tuple[int | None, ...] = ()
    """The USD amounts (micro-USD) of ``later_event_ms``, index for index."""
    place: PlaceUse | None = None
    """This transaction's place among the user's places; None when none were kept."""

    @property
    def recent_amounts(self) -> tuple[int | None, ...]:
        """``recent_micros``, or all unknown when they do not match the event times."""
        return _amounts(self.recent_micros, len(self.recent_event_ms))

    @property
    def later_amounts(self) -> tuple[int | None, ...]:
        """``later_micros``, or all unknown when they do not match the event times."""
        return _amounts(self.later_micros, len(self.later_event_ms))

    @property
    def window_entries_ms(self) -> tuple[tuple[int, int | None], ...]:
        """(event ms, micro-USD or None) of every entry around this one, this one
        included, oldest first."""
        return (
            *reversed(tuple(zip(self.recent_event_ms, self.recent_amounts, strict=True))),
            *zip(self.later_event_ms, self.later_amounts, strict=True),
        )

    def window_entries(self) -> tuple[WindowEntry, ...]:
        """`window_entries_ms` as the rules read them."""
        return tuple(WindowEntry(from_epoch_ms(t), m) for t, m in self.window_entries_ms)

    def place_history(self) -> PlaceHistory | None:
        """`place` as the rules read it."""
        if self.place is None:
            return None
        used = self.place.last_used_ms
        return PlaceHistory(
            key=self.place.key,
            last_used=None if used is None else from_epoch_ms(used),
            has_history=self.place.has_history,
        )

    @classmethod
    def from_json(cls, text: str, *, replayed: bool) -> Snapshot:
        return cls.from_dict(orjson.loads(text), replayed=replayed)

    @classmethod
    def from_dict(cls, raw: dict, *, replayed: bool, places: _Places | None = None) -> Snapshot:
        """``places``: coordinates shared across the snapshots of one answer."""
        previous = raw.get("previous")
        chosen = raw.get("coordinates")
        place = raw.get("place")
        recent = tuple(map(int, raw["recent"]))
        later = tuple(map(int, raw.get("later", ())))
        return cls(
            recent,
            None if previous is None else LastSeen.from_dict(previous, places),
            int(raw["evaluatedAtMs"]),
            replayed,
            later,
            None if chosen is None else _chosen(chosen, places),
            _micros(raw.get("recentMicros"), len(recent)),
            _micros(raw.get("laterMicros"), len(later)),
            None if place is None else PlaceUse.from_dict(place),
        )


class StateEntry(NamedTuple):
    """What the state needs of one transaction: who, when, where, how much.

    ``candidates`` are the readings of its place, default first (explicit coordinates
    are the only one); when empty, ``coordinates`` (if any) is the only candidate.
    ``amount_usd`` is its USD value; when None, the one stamped on the transaction
    (``amountUsd``), and when that is absent too the entry's amount is unknown.
    """

    transaction: Transaction
    coordinates: Coordinates | None
    candidates: tuple[Coordinates, ...] = ()
    amount_usd: Decimal | None = None

    def choices(self) -> tuple[Coordinates, ...]:
        if self.candidates:
            return self.candidates
        return () if self.coordinates is None else (self.coordinates,)

    def usd_micros(self) -> int | None:
        usd = self.transaction.amountUsd if self.amount_usd is None else self.amount_usd
        return None if usd is None else to_micros(usd)


class UserState:
    """Records transactions in their users' state; see the module docstring.

    ``evaluation_ttl_seconds``: how long each snapshot is kept for a redelivery; 0 keeps
    none, for a caller that never records a transaction twice (a backtest, whose input
    holds each transaction once): a rerun would be judged against the state as it is
    then (it still adds no second window entry)."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        late_allowance_ms: int,
        max_entries: int,
        evaluation_ttl_seconds: int,
        user_ttl_seconds: int,
        max_places: int = DEFAULT_MAX_PLACES,
    ) -> None:
        self._client = client
        self._script = client.register_script(SCRIPT)
        self._late_allowance_ms = late_allowance_ms
        self._max_entries = max_entries
        self._evaluation_ttl = evaluation_ttl_seconds
        self._user_ttl = user_ttl_seconds
        self._max_places = max_places

    def record(
        self,
        entries: Sequence[StateEntry],
        *,
        evaluated_at_ms: int,
        lookback_ms: int,
        places_lookback_ms: int = 0,
        user_ttl_seconds: int | None = None,
    ) -> list[Snapshot]:
        """One snapshot per entry, in order; raises `redis.RedisError` (nothing is half
        done that a retry would not redo identically).

        ``places_lookback_ms``: how far back the rules look in the user's places (0: no
        places are kept nor read). ``user_ttl_seconds``: how long the user's keys live
        after this batch, never less than the constructor's value."""
        if not entries:
            return []
        run = _Run(
            evaluated_at_ms=evaluated_at_ms,
            lookback_ms=lookback_ms,
            retain_ms=lookback_ms + self._late_allowance_ms,
            places_retain_ms=places_lookback_ms + self._late_allowance_ms
            if places_lookback_ms > 0
            else 0,
            user_ttl=max(self._user_ttl, user_ttl_seconds or 0),
        )
        texts = _PlaceTexts(snapshots=self._evaluation_ttl > 0, places=run.places_retain_ms > 0)
        # the window key, item[0], carries the user's hash tag like every key of the user
        groups = slot_groups(
            self._client, [texts.script_entry(entry) for entry in entries], lambda item: item[0]
        )
        # the runs that did happen are replays the second time: the same answers
        results = run_reloading(self._client, SCRIPT, lambda: self._run(groups, run))
        for result in results:
            if isinstance(result, Exception):
                raise result
        snapshots: list[Snapshot | None] = [None] * len(entries)
        places: _Places = {}
        for (positions, _), text in zip(groups, results, strict=True):
            flat = orjson.loads(text)
            for position, replayed, raw in zip(positions, flat[0::2], flat[1::2], strict=True):
                snapshots[position] = Snapshot.from_dict(
                    raw, replayed=bool(replayed), places=places
                )
        return snapshots  # type: ignore[return-value]  # every position is filled

    def _run(self, groups: list[tuple[list[int], list[list[str]]]], run: _Run) -> list:
        pipe = self._client.pipeline(transaction=False)
        for _, items in groups:
            pipe.evalsha(
                self._script.sha,
                1,
                items[0][0],  # routes the call on a cluster; the entries name their keys
                run.evaluated_at_ms,
                run.lookback_ms,
                run.retain_ms,
                self._max_entries,
                self._evaluation_ttl,
                run.user_ttl,
                run.places_retain_ms,
                self._max_places,
                orjson.dumps(items),  # compact, UTF-8: json.dumps(ensure_ascii=False)
            )
        return pipe.execute(raise_on_error=False)


class _PlaceTexts:
    """`_script_entry` for one batch, which names the same few places over and over:
    each place name's key and each candidate's texts are worked out once per batch.
    The snapshot and places keys are sent empty when the script keeps none (it never
    touches them then): two keys fewer to build, encode and decode per entry."""

    def __init__(self, *, snapshots: bool = True, places: bool = True) -> None:
        self._names: dict[str, str] = {}
        self._candidates: dict[Coordinates, tuple[str, str, str]] = {}
        self._snapshots = snapshots
        self._places = places

    def script_entry(self, entry: StateEntry) -> list[str]:
        """One entry of the script's batch (see ``scripts/record_batch.lua``)."""
        txn = entry.transaction
        micros = entry.usd_micros()
        location = txn.location
        name = self._names.get(location)
        if name is None:
            name = self._names[location] = name_key(location)
        item = [
            keys.user_window(txn.userId),
            keys.user_last_seen(txn.userId),
            keys.user_evaluation(txn.userId, txn.transactionId) if self._snapshots else "",
            keys.user_places(txn.userId) if self._places else "",
            txn.transactionId,
            str(epoch_ms(txn.timestamp)),
            location,
            "" if micros is None else str(micros),
            name,
        ]
        for c in entry.choices():
            if c.latitude == 0 or c.longitude == 0:  # 0.0 == -0.0, but not as text
                item.extend(_candidate_texts(c))
                continue
            texts = self._candidates.get(c)
            if texts is None:
                texts = self._candidates[c] = _candidate_texts(c)
            item.extend(texts)
        return item


def _candidate_texts(c: Coordinates) -> tuple[str, str, str]:
    """A candidate as the script takes it: latitude, longitude, place key."""
    return (
        repr(float(c.latitude)),  # shortest exact text, a JSON number
        repr(float(c.longitude)),
        coordinates_key(c),
    )


@dataclass(frozen=True)
class _Run:
    """The numbers one `UserState.record` call passes to every script run."""

    evaluated_at_ms: int
    lookback_ms: int
    retain_ms: int
    places_retain_ms: int
    user_ttl: int
