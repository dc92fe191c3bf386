"""``Prefer: wait=N`` (RFC 7240): the detector's decision inline in the 201.

After the broker's acknowledgement the request waits, at most N seconds (capped at
`MAX_WAIT_SECONDS`), for the decision of each transaction it accepted:

    GET decision ──found──> inline view
        │ missing
        v
    BLMOVE ready ready (remaining time) ──> GET decision ──found──> inline view
                                                  │ missing (time is up)
                                                  v
                                           {"status": "pending"}

The detector writes the decision and, in the same pipeline and after it, pushes one
element onto `keys.decision_ready` (which expires after a minute). A decision written
before the wait begins is found by the first GET; one written between the GET and the
block leaves its element in the list, so the block returns at once. The block is a
``BLMOVE`` of the list onto itself (a rotation), not a ``BLPOP``: it wakes on the element
without consuming it, so several requests waiting for the same transaction (a replay of
an Idempotency-Key while the first request still waits) all wake. A batch waits for its
items one key at a time, in order, with the time that remains: a multi-key block would
span cluster slots.

Blocking needs a socket timeout longer than the block, so the block runs on a client of
its own (`DecisionWaiter.connect`): a non-blocking pool of `WAIT_CONNECTIONS`, more than
the gunicorn threads of a worker (16), each of which holds at most one of these
connections at a time; GETs go through the service's client with its short timeout.
Neither pool can be held by a thread that waits for the other, so they cannot deadlock;
should the wait pool run out, or Redis be away, the request answers ``pending`` (the
transaction is accepted all the same).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import pydantic
import redis

from fraud_common import keys
from fraud_common.jsonutil import dumps
from fraud_common.redis_client import connect
from fraud_common.schemas import Decision

log = logging.getLogger(__name__)

HEADER = "Prefer"
APPLIED_HEADER = "Preference-Applied"
MAX_WAIT_SECONDS = 10
WAIT_CONNECTIONS = 64
PENDING: dict[str, Any] = {"status": "pending"}

# Redis reads a block timeout in milliseconds and takes 0 for "forever": never block for
# less than this.
_SHORTEST_BLOCK_SECONDS = 0.001


def requested_wait(headers: Iterable[str]) -> int | None:
    """Seconds of the ``wait`` preference of the request's ``Prefer`` headers, capped at
    `MAX_WAIT_SECONDS`; None when there is none or it is not valid.

    RFC 7240: the headers form one comma-separated list of ``token [= word]`` with
    ``;``-parameters (ignored here); names are case-insensitive; only the first ``wait``
    counts, and a value that is not delta-seconds (digits, optionally quoted) makes the
    server ignore the preference, without an error.
    """
    for header in headers:
        for element in _split_outside_quotes(header, ","):
            head = _split_outside_quotes(element, ";")[0]
            name, _, value = head.partition("=")
            if name.strip().lower() != "wait":
                continue
            seconds = _unquote(value.strip())
            if not (seconds.isascii() and seconds.isdigit()):
                return None
            if len(seconds.lstrip("0")) > 2:  # also spares int() a thousand digits
                return MAX_WAIT_SECONDS
            return min(int(seconds), MAX_WAIT_SECONDS)
    return None


def applied(seconds: int) -> str:
    """The ``Preference-Applied`` value for a wait of ``seconds``."""
    return f"wait={seconds}"


def with_field(body: str, name: str, value: Any) -> str:
    """``body`` (a JSON object's text) with one more member, the rest left byte for byte
    (the 201 embeds the stored transaction's JSON as is)."""
    text = body.rstrip()
    if not text.endswith("}"):
        raise ValueError("not a JSON object")
    inner = text[:-1].rstrip()
    separator = "" if inner.endswith("{") else ","
    return f"{inner}{separator}{dumps(name)}:{dumps(value)}}}"


def inline_view(decision: Decision) -> dict[str, Any]:
    """The decision as the 201 shows it: status, riskScore, reasons (without their
    details), rulesVersion, and for ``error`` why."""
    stored = decision.model_dump(mode="json")
    view: dict[str, Any] = {
        "status": decision.status,
        "riskScore": decision.riskScore,
        "reasons": [{k: v for k, v in r.items() if k != "details"} for r in stored["reasons"]],
        "rulesVersion": decision.rulesVersion,
    }
    if decision.error is not None:
        view["error"] = decision.error
    return view


class DecisionWaiter:
    """Waits for decisions: ``reader`` for GETs (the service's client), ``blocker`` for
    the blocking waits (socket timeout above `MAX_WAIT_SECONDS`)."""

    def __init__(
        self,
        reader: redis.Redis,
        blocker: redis.Redis,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._reader = reader
        self._blocker = blocker
        self._clock = clock

    @classmethod
    def connect(cls, url: str, reader: redis.Redis, *, socket_timeout: float) -> DecisionWaiter:
        """A waiter with its own blocking client on ``url``: connecting times out after
        ``socket_timeout``, reading after `MAX_WAIT_SECONDS` more (a block's answer comes
        from the server when its time is up; the socket timeout is for a dead server).
        A cluster ``reader`` gets a cluster blocker (each block is on one key, one slot)."""
        blocker = connect(
            url,
            socket_timeout=MAX_WAIT_SECONDS + socket_timeout,
            connect_timeout=socket_timeout,
            max_connections=WAIT_CONNECTIONS,
            cluster=isinstance(reader, redis.RedisCluster),
        )
        return cls(reader, blocker)

    def close(self) -> None:
        self._blocker.close()

    def decisions(self, transaction_ids: Sequence[str], deadline: float) -> list[dict[str, Any]]:
        """The inline view of each transaction's decision, in order; `PENDING` for those
        not decided by ``deadline`` (a `clock` time). Never raises for Redis: what it
        could not read is pending."""
        views: list[dict[str, Any] | None] = [None] * len(transaction_ids)
        try:
            views = self._read_many(transaction_ids)
            for index, transaction_id in enumerate(transaction_ids):
                if views[index] is not None:
                    continue
                if deadline - self._clock() < _SHORTEST_BLOCK_SECONDS:
                    break
                views[index] = self._read(transaction_id)
                remaining = deadline - self._clock()
                if views[index] is None and remaining >= _SHORTEST_BLOCK_SECONDS:
                    self._blocker.blmove(
                        keys.decision_ready(transaction_id),
                        keys.decision_ready(transaction_id),
                        # Redis >= 6 takes fractional seconds; redis-py's hint says int.
                        timeout=round(remaining, 3),  # type: ignore[arg-type]
                        src="LEFT",
                        dest="RIGHT",
                    )
                    views[index] = self._read(transaction_id)
            missing = [i for i, view in enumerate(views) if view is None]
            if missing:  # time is up: one last look at the rest, in one round trip
                found = self._read_many([transaction_ids[i] for i in missing])
                for index, view in zip(missing, found, strict=True):
                    views[index] = view
        except redis.RedisError:
            log.warning("could not wait for a decision; answering pending", exc_info=True)
        return [PENDING if view is None else view for view in views]

    def _read(self, transaction_id: str) -> dict[str, Any] | None:
        return _view_of(transaction_id, self._reader.get(keys.decision(transaction_id)))

    def _read_many(self, transaction_ids: Sequence[str]) -> list[dict[str, Any] | None]:
        pipe = self._reader.pipeline(transaction=False)  # one key per command: cluster-safe
        for transaction_id in transaction_ids:
            pipe.get(keys.decision(transaction_id))
        return [_view_of(t, raw) for t, raw in zip(transaction_ids, pipe.execute(), strict=True)]


def _view_of(transaction_id: str, raw: object) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        return inline_view(Decision.model_validate_json(str(raw)))
    except pydantic.ValidationError:
        log.exception("unreadable decision of %s; answering pending", transaction_id)
        return None


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    """``text`` split at ``separator`` where it is not inside a quoted-string."""
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def _unquote(value: str) -> str:
    """The content of a quoted-string (escapes resolved); other values as they are."""
    if len(value) < 2 or not (value.startswith('"') and value.endswith('"')):
        return value
    out: list[str] = []
    escaped = False
    for char in value[1:-1]:
        if char == "\\" and not escaped:
            escaped = True
            continue
        escaped = False
        out.append(char)
    return "".join(out)
