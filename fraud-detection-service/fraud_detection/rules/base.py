"""What every rule reads and returns.

A rule is a pure function ``evaluate(context, params) -> Finding | None``: no clock, no
I/O. Everything it may look at (the transaction, its USD value, the user's recent
event times, the previous transaction) is in the `EvaluationContext`, built from the
state snapshot the transaction was evaluated against, so the same snapshot always
gives the same findings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from fraud_common.schemas import Transaction
from fraud_detection.geo import Coordinates


@dataclass(frozen=True)
class Place:
    """A transaction's place: its name as given and coordinates when known (explicit
    latitude/longitude, else resolved from the name)."""

    name: str
    coordinates: Coordinates | None = None


@dataclass(frozen=True)
class PreviousTransaction:
    transaction_id: str
    place: Place
    event_time: datetime


@dataclass(frozen=True)
class EvaluationContext:
    transaction: Transaction
    amount_usd: Decimal
    place: Place
    recent_event_times: tuple[datetime, ...]
    """Event times of the user's transactions the store still holds at or before this
    one (this one included), newest first; bounded by the longest window of the rules."""
    previous: PreviousTransaction | None
    evaluated_at: datetime


@dataclass(frozen=True)
class Finding:
    """Why a rule fired: machine-readable details and a sentence for people."""

    details: dict[str, Any]
    message: str


@dataclass(frozen=True)
class RuleHit:
    """A fired rule, ready to become an alert."""

    alert_type: str
    severity: str
    score: int
    details: dict[str, Any] = field(default_factory=dict)
    message: str = ""


RuleFunction = Callable[[EvaluationContext, Any], Finding | None]
