"""What every rule reads and returns, and what makes a module a rule type.

A rule type is one module of this package exposing ``RULE = RuleType(...)``: its name
(as ``type:`` in ``rules.yaml``), its parameters (a `RuleParams` pydantic model, which
``rules.yaml`` is validated against and the JSON Schema is generated from), its default
alert type, how far around a transaction it needs the user's window (``lookback``), and
a pure function ``evaluate(context, params) -> Finding | None``: no clock, no I/O.
Everything it may look at (the transaction, its USD value, the user's event times
around this one, the previous transaction) is in the `EvaluationContext`, built from the
state snapshot the transaction was evaluated against, so the same snapshot always
gives the same findings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict

from fraud_common.schemas import Transaction
from fraud_detection.geo import Coordinates


class Place(NamedTuple):
    """A transaction's place: its name as given and coordinates when known (explicit
    latitude/longitude, else resolved from the name).

    ``candidates`` are every reading of the name, default first (explicit coordinates
    are the only one). Before evaluation ``coordinates`` is the first of them; in an
    `EvaluationContext` it is the one the state chose (nearest the previous place).
    """

    name: str
    coordinates: Coordinates | None = None
    candidates: tuple[Coordinates, ...] = ()


class PreviousTransaction(NamedTuple):
    transaction_id: str
    place: Place
    event_time: datetime


class WindowEntry(NamedTuple):
    """One of the user's transactions around this one: its event time (ms resolution)
    and USD value in micro-USD (`fraud_detection.usd_micros`), None when unknown.

    A named tuple, not a dataclass: one is built per entry of every transaction, and a
    tuple is several times cheaper to build (immutable all the same)."""

    event_time: datetime
    amount_usd_micros: int | None


@dataclass(frozen=True)
class PlaceHistory:
    """This transaction's place among the user's places, as they were before it."""

    key: str
    """The place as the state keys it (`fraud_detection.place_keys`)."""
    last_used: datetime | None
    """The latest event time the user used it at (after this one, for a late
    transaction), None when the user's places do not hold it."""
    has_history: bool
    """Whether the user had used any place at all."""


class EvaluationContext(NamedTuple):
    """Everything a rule may read of one transaction (see the module docstring). Named
    tuples here and for the places: several are built per transaction, and a tuple
    builds at a third of a frozen dataclass's cost (immutable all the same)."""

    transaction: Transaction
    amount_usd: Decimal
    place: Place
    recent_event_times: tuple[datetime, ...]
    """Event times of the user's transactions the store still holds at or before this
    one (this one included), newest first; bounded by the longest window of the rules."""
    previous: PreviousTransaction | None
    evaluated_at: datetime
    later_event_times: tuple[datetime, ...] = ()
    """Event times after this one, less than the longest window later, oldest first: the
    user's transactions with later event times that arrived before this (late) one."""
    listed: frozenset[tuple[str, str]] = frozenset()
    """The ``(list, field)`` pairs whose field value of this transaction is on the list,
    looked up once per batch for the ``list_match`` rules (`fraud_detection.lists`)."""
    window_entries: tuple[WindowEntry, ...] = ()
    """The user's transactions around this one (this one included), oldest first: the
    same entries as the event times above, with their amounts."""
    place_history: PlaceHistory | None = None
    """None when the state kept no places (no rule looks back in them)."""

    @property
    def window_event_times(self) -> tuple[datetime, ...]:
        """Every event time around this one (both fields above), oldest first."""
        return tuple(sorted(self.recent_event_times + self.later_event_times))


@dataclass(frozen=True)
class Finding:
    """Why a rule fired: machine-readable details and a sentence for people."""

    details: dict[str, Any]
    message: str


@dataclass(frozen=True)
class RuleHit:
    """A fired rule, ready to become an alert."""

    rule_id: str
    alert_type: str
    severity: str
    score: int
    details: dict[str, Any] = field(default_factory=dict)
    message: str = ""


RuleFunction = Callable[[EvaluationContext, Any], Finding | None]


class RuleParams(BaseModel):
    """Base of every rule type's parameters: immutable, unknown names refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def no_lookback(params: Any) -> timedelta:
    return timedelta(0)


@dataclass(frozen=True)
class RuleType:
    """A registered rule type (see the module docstring)."""

    name: str
    params: type[RuleParams]
    evaluate: RuleFunction
    alert_type: str
    lookback: Callable[[Any], timedelta] = no_lookback
    """How far before (and, for late events, after) a transaction's event time the rule
    needs the user's window."""
    places_lookback: Callable[[Any], timedelta] = no_lookback
    """How far back the rule needs the user's places (`PlaceHistory`); timedelta(0)
    when it reads none."""
    retention: Callable[[Any], timedelta] | None = None
    """How long after a user's last transaction the rule still needs the user's state
    (default: the lookback)."""

    def retention_of(self, params: Any) -> timedelta:
        return (self.retention or self.lookback)(params)
