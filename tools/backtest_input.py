"""Transactions for a backtest: read from JSONL (or topic messages), in event-time order.

A line is a transaction either as published on ``transactions`` (it has ``receivedAt``,
the USD value stamped at acceptance travels with it) or as POSTed (``userId``,
``amount``, ``currency``, ``location``, ``timestamp`` and optional coordinates; an
optional ``transactionId`` names it). An as-POSTed one is accepted the way the
transaction-service accepts it (`fraud_common.schemas.Transaction.accept`: validated,
USD value stamped from the rate table), received at its event time; without a
``transactionId`` its id is derived from its line (uuid5), so two runs agree.

Recorded traffic is old by nature: the event-age bound (``MAX_EVENT_AGE_SECONDS``)
that guards live ingest does not apply here.
"""

from __future__ import annotations

import contextlib
import sys
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import orjson
from pydantic import ValidationError

from fraud_common.schemas import (
    MAX_EVENT_AGE_CONTEXT,
    FieldProblem,
    Transaction,
    TransactionRequest,
    parse_timestamp,
    validation_details,
)

ANY_AGE = {MAX_EVENT_AGE_CONTEXT: timedelta(days=365 * 1000)}
MAX_PROBLEMS = 5
"""Reasons kept (and printed) of the lines skipped; all are counted."""
_LINE_NAMESPACE = uuid.UUID("4d1f0a8e-2b7c-4f3e-9c61-8a5e7d2b1f04")


class Problem(NamedTuple):
    """Why a line was skipped, and where in the input it was (for the input's order)."""

    position: int
    text: str
    """``<source>:<line>: <why>``"""


@dataclass
class Loaded:
    """The transactions of an input, in event-time order, and what was skipped."""

    transactions: list[Transaction]
    skipped: int = 0
    positions: list[int] = field(default_factory=list)
    """Each transaction's position in the input, index for index (from `accept`)."""
    problems: list[Problem] = field(default_factory=list)
    """The first few reasons a line was skipped, in input order."""
    outside_range: int = 0
    duplicates: int = 0
    """Lines naming a transactionId an earlier line named (the first line counts, as
    the detector's first decision does)."""

    def add_counts(self, other: Loaded, *, max_problems: int = MAX_PROBLEMS) -> None:
        """Add what ``other`` skipped to this one's counts (not its transactions)."""
        self.skipped += other.skipped
        self.outside_range += other.outside_range
        self.duplicates += other.duplicates
        self.problems = sorted(self.problems + other.problems)[:max_problems]


@dataclass
class Scanned:
    """An input read but not yet validated: each line that is a JSON object, with where
    it came from and its position, the first line of each transactionId only; ``loaded``
    counts what was skipped so far (it holds no transactions)."""

    objects: list[tuple[int, str, dict[str, Any]]]
    loaded: Loaded


def scan(lines: Iterable[tuple[str, str | bytes]], *, max_problems: int = MAX_PROBLEMS) -> Scanned:
    """The JSON objects of ``(where, text)`` lines (cheap and serial: the validation,
    `accept`, is the costly part and can run where the objects are replayed)."""
    scanned = Scanned([], Loaded([]))
    seen: set[str] = set()
    for position, (where, text) in enumerate(lines):
        if not text.strip():
            continue
        try:
            raw = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            _skip(scanned.loaded, Problem(position, f"{where}: not JSON: {exc}"), max_problems)
            continue
        if not isinstance(raw, dict):
            _skip(scanned.loaded, Problem(position, f"{where}: not a JSON object"), max_problems)
            continue
        transaction_id = raw.get("transactionId")
        if isinstance(transaction_id, str):
            if transaction_id in seen:
                scanned.loaded.duplicates += 1
                continue
            seen.add(transaction_id)
        scanned.objects.append((position, where, raw))
    return scanned


def accept(
    objects: Iterable[tuple[int, str, dict[str, Any]]],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    max_problems: int = MAX_PROBLEMS,
) -> Loaded:
    """The transactions of scanned objects with event times in ``[since, until)``,
    sorted by event time (input order among equal times: stable)."""
    loaded = Loaded([])
    accepted: list[tuple[Transaction, int]] = []
    for position, where, raw in objects:
        try:
            transaction = transaction_of(raw, where)
        except ValueError as exc:
            _skip(loaded, Problem(position, f"{where}: {exc}"), max_problems)
            continue
        if (since is not None and transaction.timestamp < since) or (
            until is not None and transaction.timestamp >= until
        ):
            loaded.outside_range += 1
            continue
        accepted.append((transaction, position))
    accepted.sort(key=lambda pair: pair[0].timestamp)
    loaded.transactions = [transaction for transaction, _ in accepted]
    loaded.positions = [position for _, position in accepted]
    return loaded


def load(
    lines: Iterable[tuple[str, str | bytes]],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    max_problems: int = MAX_PROBLEMS,
) -> Loaded:
    """`scan` then `accept`, in this process."""
    scanned = scan(lines, max_problems=max_problems)
    loaded = accept(scanned.objects, since=since, until=until, max_problems=max_problems)
    loaded.add_counts(scanned.loaded, max_problems=max_problems)
    return loaded


def _skip(loaded: Loaded, problem: Problem, max_problems: int) -> None:
    loaded.skipped += 1
    if len(loaded.problems) < max_problems:
        loaded.problems.append(problem)


def transaction_of(raw: dict[str, Any], where: str) -> Transaction:
    """One transaction from one line's JSON object; raises ValueError saying why not."""
    if "receivedAt" in raw:
        try:
            return Transaction.model_validate(raw, context=ANY_AGE)
        except ValidationError as exc:
            raise ValueError(_describe(validation_details(exc))) from exc
    return _as_posted(raw, where)


def _as_posted(raw: dict[str, Any], where: str) -> Transaction:
    body = dict(raw)
    transaction_id = body.pop("transactionId", None)
    if transaction_id is not None and not isinstance(transaction_id, str):
        raise ValueError("transactionId must be a string")
    try:
        request = TransactionRequest.model_validate(body)
    except ValidationError as exc:
        raise ValueError(_describe(validation_details(exc))) from exc
    if request.timestamp is None:
        raise ValueError("an as-POSTed transaction needs its timestamp (event time)")
    try:
        return Transaction.accept(
            request,
            received_at=request.timestamp,
            transaction_id=transaction_id or str(uuid.uuid5(_LINE_NAMESPACE, where)),
            max_event_age=ANY_AGE[MAX_EVENT_AGE_CONTEXT],
        )
    except FieldProblem as problem:
        raise ValueError(_describe(problem.details)) from problem


def _describe(details: list[dict[str, str]]) -> str:
    return "; ".join(f"{d['field']} {d['message']}" for d in details)


def file_lines(path: str) -> Iterator[tuple[str, str]]:
    """``(path:line, text)`` of a JSONL file (``-``: standard input)."""
    stream = sys.stdin if path == "-" else open(path, encoding="utf-8")  # noqa: SIM115
    try:
        for number, text in enumerate(stream, start=1):
            yield f"{path}:{number}", text
    finally:
        if stream is not sys.stdin:
            stream.close()


def event_time(text: str) -> datetime:
    """A ``--since``/``--until`` value: ISO 8601 with offset, or epoch seconds."""
    value: Any = text
    with contextlib.suppress(ValueError):
        value = float(text)  # epoch seconds
    try:
        return parse_timestamp(value)
    except ValueError as exc:  # pydantic's custom error is a ValueError
        raise ValueError(f"{text!r}: {exc}") from exc
