"""Builders for the detector's tests: transactions as the transaction-service makes them
and rule contexts with exactly the state a test wants."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from fraud_common.money import load_fx_rates
from fraud_common.schemas import Transaction, usd_stamp
from fraud_detection.geo import Coordinates, load_gazetteer
from fraud_detection.rules import EvaluationContext, Place, PreviousTransaction

T0 = datetime(2026, 11, 28, 10, 0, 0, tzinfo=UTC)


def transaction(
    *,
    user: str = "user-1",
    amount: str = "25.00",
    currency: str = "USD",
    location: str = "New York",
    at: datetime = T0,
    latitude: float | None = None,
    longitude: float | None = None,
    transaction_id: str | None = None,
) -> Transaction:
    """A transaction as accepted at ``at``, its USD value stamped as on ingest."""
    return Transaction(
        transactionId=transaction_id or str(uuid.uuid4()),
        userId=user,
        amount=Decimal(amount),
        currency=currency,
        location=location,
        latitude=latitude,
        longitude=longitude,
        timestamp=at,
        receivedAt=at,
        **usd_stamp(Decimal(amount), currency, load_fx_rates()),
    )


def resolved(name: str, coordinates: Coordinates | None = None) -> Place:
    """A place as the detector sees it: explicit coordinates, else the gazetteer's."""
    return Place(name, coordinates or load_gazetteer().resolve(name))


def context(
    txn: Transaction,
    *,
    place: Place | None = None,
    earlier: Sequence[datetime] = (),
    previous: tuple[Place, datetime] | None = None,
) -> EvaluationContext:
    """``earlier``: event times of the user's earlier transactions (any order)."""
    times = sorted([*earlier, txn.timestamp], reverse=True)
    return EvaluationContext(
        transaction=txn,
        amount_usd=load_fx_rates().to_usd(txn.amount, txn.currency),
        place=place or resolved(txn.location),
        recent_event_times=tuple(times),
        previous=None
        if previous is None
        else PreviousTransaction("previous-txn", previous[0], previous[1]),
        evaluated_at=txn.timestamp + timedelta(milliseconds=5),
    )
