"""Rule contexts for the amount and place rules: a transaction, the user's window entries
around it (event time and USD amount) and its place among the user's places, exactly as
a test wants them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal

from fraud_common.schemas import Transaction
from fraud_detection.rules.base import EvaluationContext, Place, PlaceHistory, WindowEntry
from fraud_detection.usd_micros import to_micros
from tests.support.detector_factories import T0, transaction


def entry(at: datetime, usd: str | None) -> WindowEntry:
    return WindowEntry(at, None if usd is None else to_micros(Decimal(usd)))


def window_context(
    txn: Transaction,
    others: Sequence[tuple[datetime, str | None]] = (),
    *,
    place_history: PlaceHistory | None = None,
) -> EvaluationContext:
    """``others``: the user's other transactions (event time, USD amount or None when
    unknown), earlier or later, in any order; ``txn`` is added with its own amount."""
    assert txn.amountUsd is not None
    entries = sorted(
        [entry(txn.timestamp, str(txn.amountUsd)), *(entry(at, usd) for at, usd in others)],
        key=lambda e: e.event_time,
    )
    return EvaluationContext(
        transaction=txn,
        amount_usd=txn.amountUsd,
        place=Place(txn.location),
        recent_event_times=tuple(
            e.event_time for e in reversed(entries) if e.event_time <= txn.timestamp
        ),
        later_event_times=tuple(e.event_time for e in entries if e.event_time > txn.timestamp),
        previous=None,
        evaluated_at=txn.timestamp + timedelta(milliseconds=5),
        window_entries=tuple(entries),
        place_history=place_history,
    )


def sequence(amounts: Sequence[tuple[float, str]]) -> list[tuple[Transaction, EvaluationContext]]:
    """Transactions at ``T0 + seconds`` of the given USD amounts, arriving in order: each
    with the ones before it as its window."""
    times = [(T0 + timedelta(seconds=s), usd) for s, usd in amounts]
    out = []
    for i, (at, usd) in enumerate(times):
        txn = transaction(at=at, amount=usd)
        out.append((txn, window_context(txn, times[:i])))
    return out
