"""Lists (allow lists, block lists, ...) kept in Redis: entries with a reason and an
optional expiry, written by the lists API and looked up by the ``list_match`` rule.

Layout (see `fraud_common.keys`): per list, a hash value -> entry JSON and a sorted set
value -> expiry in ms (``+inf`` for none), both hash-tagged with the list's name so every
key of a list is in one cluster slot and a write is one atomic script
(``scripts/list_write.lua``). Why not one key per entry with Redis's own ``EX``: that
needs an index set to list a list, and the index keeps members whose keys expired, so
a read would have to check each one; here a lookup is one ``ZMSCORE`` per list and the
sorted set is the truth on expiry.

Expiry is lazy: an entry whose expiry has passed is absent for every read (lookup and
listing compare with the clock), and each write removes up to `PRUNE_LIMIT` of them.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import UTC, datetime
from importlib import resources
from typing import Any, Literal, Protocol

import redis
from pydantic import BaseModel, ConfigDict, Field

from fraud_common import keys
from fraud_common.durability import RedisDurability
from fraud_common.jsonutil import isoformat_utc
from fraud_common.schemas import Transaction

LIST_NAME_PATTERN = r"^[a-z0-9_-]{1,64}$"
MAX_VALUE_LENGTH = 256
MAX_REASON_LENGTH = 500
MAX_TTL_SECONDS = 3650 * 24 * 3600
"""Ten years (of 365 days)."""
PRUNE_LIMIT = 1000
"""Most expired entries one write removes (bounds the script's time)."""

ListField = Literal["userId", "location", "currency", "transactionId"]
"""The transaction's fields a list can be matched on (its string fields)."""

_NAME = re.compile(LIST_NAME_PATTERN)
SCRIPT = resources.files("fraud_detection").joinpath("scripts/list_write.lua").read_text("utf-8")


def valid_name(name: str) -> bool:
    return _NAME.fullmatch(name) is not None


def valid_value(value: str) -> bool:
    return 1 <= len(value) <= MAX_VALUE_LENGTH


class ListEntry(BaseModel):
    """One entry of a list, as the API shows it."""

    model_config = ConfigDict(frozen=True)

    value: str = Field(min_length=1, max_length=MAX_VALUE_LENGTH)
    reason: str | None = Field(default=None, max_length=MAX_REASON_LENGTH)
    addedAt: datetime = Field(description="when the entry was first put (UTC)")
    updatedAt: datetime = Field(description="when it was last put (UTC)")
    expiresAt: datetime | None = Field(
        default=None, description="when it stops counting (UTC); null: never"
    )


class ListStore:
    """Reads and writes lists; every time comes from ``clock`` (epoch seconds)."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        durability: RedisDurability | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._script = client.register_script(SCRIPT)
        self._durability = durability or RedisDurability()
        self._clock = clock

    def put(
        self, name: str, value: str, *, reason: str | None = None, ttl_seconds: int | None = None
    ) -> tuple[ListEntry, bool]:
        """Add or replace an entry (a replaced one keeps its ``addedAt``); returns it as
        stored and whether it is new. Durable as ``REDIS_DURABILITY`` says when it returns."""
        _check(name, value)
        if ttl_seconds is not None and not 1 <= ttl_seconds <= MAX_TTL_SECONDS:
            raise ValueError(f"ttl_seconds must be within 1..{MAX_TTL_SECONDS}")
        now_ms = self._now_ms()
        expires_ms = None if ttl_seconds is None else now_ms + ttl_seconds * 1000
        now = _time(now_ms)
        entry = {
            "reason": reason,
            "addedAt": now,
            "updatedAt": now,
            "expiresAt": None if expires_ms is None else _time(expires_ms),
        }
        score = "+inf" if expires_ms is None else str(expires_ms)
        created, text = self._write(name, "put", value, now_ms, score, json.dumps(entry))
        return _entry(value, text), bool(created)

    def delete(self, name: str, value: str) -> bool:
        """Remove an entry; whether a live one was there."""
        _check(name, value)
        (removed,) = self._write(name, "delete", value, self._now_ms())
        return bool(removed)

    def entries(self, name: str) -> list[ListEntry]:
        """The live entries of a list, by value (an unknown list has none)."""
        if not valid_name(name):
            raise ValueError(f"list name must match {LIST_NAME_PATTERN}")
        pipe = self._client.pipeline(transaction=False)
        pipe.zrangebyscore(keys.list_expiry(name), f"({self._now_ms()}", "+inf")
        pipe.hgetall(keys.list_entries(name))
        live, stored = pipe.execute()
        return [_entry(value, stored[value]) for value in sorted(live) if value in stored]

    def lookup(
        self, pairs: Iterable[tuple[str, str]], *, at_ms: int | None = None
    ) -> set[tuple[str, str]]:
        """Which ``(list, value)`` pairs are on their list at ``at_ms`` (default now): one
        pipeline round trip, one ``ZMSCORE`` per list. Pairs that cannot be on a list
        (a bad name, an empty or too long value) are simply not found."""
        wanted: dict[str, list[str]] = {}
        for name, value in set(pairs):
            if valid_name(name) and valid_value(value):
                wanted.setdefault(name, []).append(value)
        if not wanted:
            return set()
        now_ms = self._now_ms() if at_ms is None else at_ms
        pipe = self._client.pipeline(transaction=False)
        for name, values in wanted.items():
            pipe.zmscore(keys.list_expiry(name), values)
        found: set[tuple[str, str]] = set()
        for (name, values), scores in zip(wanted.items(), pipe.execute(), strict=True):
            found.update(
                (name, value)
                for value, score in zip(values, scores, strict=True)
                if score is not None and score > now_ms
            )
        return found

    def _write(self, name: str, op: str, value: str, now_ms: int, *rest: str) -> list[Any]:
        pipe = self._client.pipeline(transaction=False)
        self._script(
            keys=[keys.list_entries(name), keys.list_expiry(name)],
            args=[op, value, now_ms, PRUNE_LIMIT, *rest],
            client=pipe,
        )
        (result,) = self._durability.execute(pipe)
        return list(result)

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)


class ListReference(Protocol):
    """What a ``list_match`` rule names: a list and a transaction field."""

    @property
    def list(self) -> str: ...

    @property
    def field(self) -> str: ...


def listed_pairs(
    store: ListStore,
    references: Collection[ListReference],
    transactions: Sequence[Transaction],
    *,
    at_ms: int | None = None,
) -> list[frozenset[tuple[str, str]]]:
    """For each transaction, the ``(list, field)`` pairs of ``references`` whose field
    value is on the list (`EvaluationContext.listed`): one Redis round trip for the whole
    batch, none when there is no reference."""
    wanted = {(ref.list, ref.field) for ref in references}
    if not wanted:
        return [frozenset()] * len(transactions)
    values = [
        {(name, field): str(getattr(txn, field)) for name, field in wanted} for txn in transactions
    ]
    found = store.lookup(
        {(name, value) for per_txn in values for (name, _), value in per_txn.items()},
        at_ms=at_ms,
    )
    return [
        frozenset(ref for ref, value in per_txn.items() if (ref[0], value) in found)
        for per_txn in values
    ]


def _check(name: str, value: str) -> None:
    if not valid_name(name):
        raise ValueError(f"list name must match {LIST_NAME_PATTERN}")
    if not valid_value(value):
        raise ValueError(f"value must be 1-{MAX_VALUE_LENGTH} characters")


def _time(epoch_ms: int) -> str:
    return isoformat_utc(datetime.fromtimestamp(epoch_ms / 1000, UTC))


def _entry(value: str, text: object) -> ListEntry:
    stored = json.loads(text if isinstance(text, bytes | str) else str(text))
    return ListEntry(value=value, **stored)
