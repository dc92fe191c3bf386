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
import json
import sys
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

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
_LINE_NAMESPACE = uuid.UUID("4d1f0a8e-2b7c-4f3e-9c61-8a5e7d2b1f04")


@dataclass
class Loaded:
    """The transactions of an input, in event-time order, and what was skipped."""

    transactions: list[Transaction]
    skipped: int = 0
    problems: list[str] = field(default_factory=list)
    """The first few reasons a line was skipped (``<source>:<line>: <why>``)."""
    outside_range: int = 0
    duplicates: int = 0
    """Lines naming a transactionId seen before (the first one counts, as the
    detector's first decision does)."""


def parse_line(text: str | bytes, where: str) -> Transaction:
    """One transaction from one line; raises ValueError saying why not."""
    try:
        raw = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"not JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise ValueError("not a JSON object")
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


def load(
    lines: Iterable[tuple[str, str | bytes]],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    max_problems: int = 5,
) -> Loaded:
    """Parse ``(where, text)`` lines, keep event times in ``[since, until)``, sort by
    event time (arrival order among equal times: stable)."""
    loaded = Loaded([])
    seen: set[str] = set()
    for where, text in lines:
        if not text.strip():
            continue
        try:
            transaction = parse_line(text, where)
        except ValueError as exc:
            loaded.skipped += 1
            if len(loaded.problems) < max_problems:
                loaded.problems.append(f"{where}: {exc}")
            continue
        if (since is not None and transaction.timestamp < since) or (
            until is not None and transaction.timestamp >= until
        ):
            loaded.outside_range += 1
            continue
        if transaction.transactionId in seen:
            loaded.duplicates += 1
            continue
        seen.add(transaction.transactionId)
        loaded.transactions.append(transaction)
    loaded.transactions.sort(key=lambda t: t.timestamp)
    return loaded


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
