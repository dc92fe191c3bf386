"""Per-user detection state in Redis, updated by one Lua script call per transaction.

For each transaction the script (``scripts/record_transaction.lua``) adds it to the
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

A batch is one pipeline, in consumption order (a user's transactions share a
partition, so their order holds), answered in one round trip.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources

import redis
from redis.exceptions import NoScriptError

from fraud_common import keys
from fraud_common.schemas import Transaction
from fraud_detection.geo import Coordinates

SCRIPT = (
    resources.files("fraud_detection").joinpath("scripts/record_transaction.lua").read_text("utf-8")
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def epoch_ms(value: datetime) -> int:
    """Milliseconds since the epoch, exact (integer arithmetic, no float round-off)."""
    return (value - _EPOCH) // timedelta(milliseconds=1)


def from_epoch_ms(value: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=value)


@dataclass(frozen=True)
class LastSeen:
    """The user's previous transaction, as the state keeps it."""

    transaction_id: str
    location: str
    coordinates: Coordinates | None
    event_ms: int

    @classmethod
    def from_dict(cls, raw: dict) -> LastSeen:
        lat, lon = raw.get("latitude"), raw.get("longitude")
        return cls(
            transaction_id=str(raw["transactionId"]),
            location=str(raw["location"]),
            coordinates=None if lat is None or lon is None else Coordinates(lat, lon),
            event_ms=int(raw["eventMs"]),
        )


@dataclass(frozen=True)
class Snapshot:
    """The state one transaction was evaluated against."""

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

    @classmethod
    def from_json(cls, text: str, *, replayed: bool) -> Snapshot:
        raw = json.loads(text)
        previous = raw.get("previous")
        chosen = raw.get("coordinates")
        return cls(
            recent_event_ms=tuple(int(t) for t in raw["recent"]),
            later_event_ms=tuple(int(t) for t in raw.get("later", ())),
            coordinates=None if chosen is None else Coordinates(*map(float, chosen)),
            previous=None if previous is None else LastSeen.from_dict(previous),
            evaluated_at_ms=int(raw["evaluatedAtMs"]),
            replayed=replayed,
        )


@dataclass(frozen=True)
class StateEntry:
    """What the state needs of one transaction: who, when, where.

    ``candidates`` are the readings of its place, default first (explicit coordinates
    are the only one); when empty, ``coordinates`` (if any) is the only candidate.
    """

    transaction: Transaction
    coordinates: Coordinates | None
    candidates: tuple[Coordinates, ...] = ()

    def choices(self) -> tuple[Coordinates, ...]:
        if self.candidates:
            return self.candidates
        return () if self.coordinates is None else (self.coordinates,)


class UserState:
    """Records transactions in their users' state; see the module docstring."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        late_allowance_ms: int,
        max_entries: int,
        evaluation_ttl_seconds: int,
        user_ttl_seconds: int,
    ) -> None:
        self._client = client
        self._script = client.register_script(SCRIPT)
        self._late_allowance_ms = late_allowance_ms
        self._max_entries = max_entries
        self._evaluation_ttl = evaluation_ttl_seconds
        self._user_ttl = user_ttl_seconds

    def record(
        self, entries: Sequence[StateEntry], *, evaluated_at_ms: int, lookback_ms: int
    ) -> list[Snapshot]:
        """One snapshot per entry, in order; raises `redis.RedisError` (nothing is half
        done that a retry would not redo identically)."""
        if not entries:
            return []
        results = self._run(entries, evaluated_at_ms, lookback_ms)
        if any(isinstance(r, NoScriptError) for r in results):
            # Redis restarted or flushed its script cache: load once and run again
            # (runs that did happen are replays now, so the answers are the same).
            self._client.script_load(SCRIPT)
            results = self._run(entries, evaluated_at_ms, lookback_ms)
        for result in results:
            if isinstance(result, Exception):
                raise result
        return [Snapshot.from_json(text, replayed=bool(int(flag))) for flag, text in results]

    def _run(self, entries: Sequence[StateEntry], evaluated_at_ms: int, lookback_ms: int) -> list:
        pipe = self._client.pipeline(transaction=False)
        retain_ms = lookback_ms + self._late_allowance_ms
        for entry in entries:
            txn = entry.transaction
            candidates = [
                json.dumps(value, allow_nan=False)  # shortest text that reads back equal
                for c in entry.choices()
                for value in (float(c.latitude), float(c.longitude))
            ]
            pipe.evalsha(
                self._script.sha,
                3,
                keys.user_window(txn.userId),
                keys.user_last_seen(txn.userId),
                keys.user_evaluation(txn.userId, txn.transactionId),
                txn.transactionId,
                epoch_ms(txn.timestamp),
                txn.location,
                evaluated_at_ms,
                lookback_ms,
                retain_ms,
                self._max_entries,
                self._evaluation_ttl,
                self._user_ttl,
                *candidates,
            )
        return pipe.execute(raise_on_error=False)
