"""Message schemas: the transaction (as accepted over HTTP and as published) and the alert.

`TransactionRequest` validates a client's POST body with one readable error per bad
field. `Transaction` is what the transaction-service stores and publishes, and what
the detector validates when it consumes; `Alert` is what the detector publishes to
``fraud-alerts``; `Decision` is the detector's verdict. Amounts are `Decimal` and travel
as JSON strings.

Event times are bounded here, once, for every producer and consumer: never before
1970, never more than `MAX_FUTURE_SKEW` after the time received, never more than the
maximum event age (``MAX_EVENT_AGE_SECONDS``, default 7 days) before it. So no time a
client or a stray producer sends can overflow the window arithmetic downstream.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from json.encoder import encode_basestring
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from fraud_common.jsonutil import dumps, isoformat_utc
from fraud_common.money import MAX_AMOUNT, FxRates, iso_currency_codes, load_fx_rates

USER_ID_PATTERN = r"^[A-Za-z0-9_.:@-]{1,64}$"
MAX_FUTURE_SKEW = timedelta(minutes=5)
DEFAULT_MAX_EVENT_AGE = timedelta(days=7)
EARLIEST_TIME = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_TIME = datetime(9000, 1, 1, tzinfo=UTC)
"""Far beyond any real clock and far from `datetime.max`, so adding a window never overflows."""
MAX_USD = Decimal("1e16")
"""Bound of a stamped USD value or rate (1e12 of the dearest currency fits well inside)."""
MAX_EVENT_AGE_CONTEXT = "max_event_age"
"""Validation-context key (a `timedelta`) of the oldest event time accepted, relative to
the time received; `DEFAULT_MAX_EVENT_AGE` when absent."""
MAX_DECIMAL_PLACES = 18
_NUMERIC_STRING = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_LEAP_SECOND = re.compile(r"T?\d{2}:\d{2}:60")
_ALERT_NAMESPACE = uuid.UUID("6f1c3a55-0d2e-4f8a-9a57-3c1f2b7e9d10")
# An alert as stored and shown: its id is a UUID (alert_id), its free-form parts bounded,
# so a forged message on fraud-alerts fails to decode and is dead-lettered.
ALERT_ID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
ALERT_TYPE_PATTERN = r"^[a-z0-9_]{1,128}$"  # as rules.yaml's alert_type
MAX_ALERT_MESSAGE = 1000
MAX_ALERT_DETAILS_BYTES = 8192


def _error(kind: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(kind, message)


def parse_amount(value: Any) -> Decimal:
    """A JSON number or numeric string, finite, > 0, <= 1e12, at most 18 decimal places."""
    if type(value) is not str and (
        isinstance(value, bool) or not isinstance(value, int | Decimal | str | float)
    ):
        raise _error("amount_type", "must be a number or a numeric string")
    if isinstance(value, str) and (len(value) > 64 or not _NUMERIC_STRING.match(value)):
        raise _error("amount_format", "must be a decimal number such as 12.50")
    if isinstance(value, float):  # only from Python callers; HTTP bodies give Decimal
        value = repr(value)
    try:
        amount = Decimal(value)
    except (InvalidOperation, ValueError) as exc:
        raise _error("amount_format", "must be a decimal number such as 12.50") from exc
    if not amount.is_finite():
        raise _error("amount_finite", "must be a finite number")
    if amount <= 0:
        raise _error("amount_range", "must be greater than 0")
    if amount > MAX_AMOUNT:
        raise _error("amount_range", "must be at most 1e12")
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > MAX_DECIMAL_PLACES:
        raise _error("amount_precision", f"must have at most {MAX_DECIMAL_PLACES} decimal places")
    return amount


def parse_timestamp(value: Any) -> datetime:
    """ISO 8601 with a UTC offset, or epoch seconds; returned in UTC, within
    [`EARLIEST_TIME`, `LATEST_TIME`)."""
    parsed = _parse_time(value)
    if parsed < EARLIEST_TIME:
        raise _error("timestamp_range", "must not be before 1970-01-01T00:00:00Z")
    if parsed >= LATEST_TIME:
        raise _error("timestamp_range", "is too far in the future")
    return parsed


def _parse_time(value: Any) -> datetime:
    if type(value) is datetime and value.tzinfo is UTC:  # the common case, first
        return value
    if isinstance(value, bool):
        raise _error("timestamp_type", "must be an ISO 8601 string or epoch seconds")
    if isinstance(value, int | Decimal | float):
        try:
            return datetime.fromtimestamp(float(value), tz=UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise _error("timestamp_range", "epoch seconds out of range") from exc
    if isinstance(value, str):
        if ":60" in value and _LEAP_SECOND.search(value):  # `in` first: 20x cheaper
            raise _error(
                "timestamp_format", "a leap second (:60) cannot be represented; use :59.999"
            )
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError as exc:
            raise _error(
                "timestamp_format", "must be ISO 8601 such as 2026-01-31T12:00:00Z"
            ) from exc
        if parsed.tzinfo is None:
            raise _error("timestamp_offset", "must include a UTC offset such as Z or +02:00")
        if parsed.tzinfo is UTC:  # "Z" (or +00:00) already is
            return parsed
        try:
            return parsed.astimezone(UTC)
        except OverflowError as exc:  # 0001-01-01T00:00:00+01:00 has no UTC form
            raise _error("timestamp_range", "must not be before 1970-01-01T00:00:00Z") from exc
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise _error("timestamp_offset", "must include a UTC offset")
        return value.astimezone(UTC)
    raise _error("timestamp_type", "must be an ISO 8601 string or epoch seconds")


def event_time_problem(
    event_time: datetime, received_at: datetime, max_age: timedelta = DEFAULT_MAX_EVENT_AGE
) -> str | None:
    """Why ``event_time`` is out of bounds relative to ``received_at``, or None."""
    if event_time - received_at > MAX_FUTURE_SKEW:
        return "must not be more than 5 minutes in the future"
    if received_at - event_time > max_age:
        return (
            f"must not be more than {int(max_age.total_seconds())} seconds in the past "
            "(MAX_EVENT_AGE_SECONDS)"
        )
    return None


def parse_currency(value: Any) -> str:
    if not isinstance(value, str):
        raise _error("currency_type", "must be an ISO 4217 code such as USD")
    code = value.strip().upper()
    if code not in iso_currency_codes():
        raise _error("currency_unknown", f"unknown ISO 4217 currency code {value!r}")
    return code


class TransactionRequest(BaseModel):
    """The body of ``POST /api/v1/transactions``, validated field by field."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    userId: str = Field(pattern=USER_ID_PATTERN, strict=True)
    amount: Decimal
    currency: str
    location: str = Field(min_length=1, max_length=128, strict=True)
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    timestamp: datetime | None = None

    _amount = field_validator("amount", mode="before")(classmethod(lambda cls, v: parse_amount(v)))
    _currency = field_validator("currency", mode="before")(
        classmethod(lambda cls, v: parse_currency(v))
    )

    @field_validator("latitude", "longitude", mode="before")
    @classmethod
    def _coordinate(cls, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
            raise _error("coordinate_type", "must be a number")
        if isinstance(value, Decimal) and not value.is_finite():
            raise _error("coordinate_type", "must be a finite number")
        try:
            return float(value)
        except OverflowError as exc:  # an integer literal too large for a float
            raise _error("coordinate_range", "is out of range") from exc

    @field_validator("location")
    @classmethod
    def _location_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise _error("location_blank", "must not be blank")
        return value

    @field_validator("timestamp", mode="before")
    @classmethod
    def _timestamp(cls, value: Any) -> datetime | None:
        return None if value is None else parse_timestamp(value)

    @model_validator(mode="after")
    def _both_or_neither(self) -> TransactionRequest:
        if (self.latitude is None) != (self.longitude is None):
            missing = "longitude" if self.longitude is None else "latitude"
            raise _error(
                "coordinates_pair", f"latitude and longitude go together: {missing} is missing"
            )
        return self


def validation_details(error: ValidationError, prefix: str = "") -> list[dict[str, str]]:
    """One ``{"field", "message"}`` per problem, in words a client can act on."""
    details = []
    for item in error.errors(include_url=False):
        field = ".".join(str(p) for p in item["loc"]) or "body"
        kind = item["type"]
        if kind == "missing":
            message = "is required"
        elif kind == "extra_forbidden":
            message = "is not a known field"
        elif kind == "string_pattern_mismatch" and field == "userId":
            message = "must be 1-64 characters of A-Z a-z 0-9 _ . : @ -"
        elif kind == "string_type":
            message = "must be a string"
        else:
            message = item["msg"]
        details.append({"field": f"{prefix}{field}", "message": message})
    return details


class FieldProblem(ValueError):
    """A body that is valid JSON but breaks the contract; ``details`` name each field."""

    def __init__(self, details: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{d['field']} {d['message']}" for d in details))
        self.details = details


class Transaction(BaseModel):
    """An accepted transaction, as stored in Redis and published on ``transactions``.

    ``amountUsd``, ``fxRate`` and ``fxRateDate`` are fixed when the transaction is
    accepted and travel with it, so the detector never needs a rate of its own (they are
    absent only on messages written before they existed)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    transactionId: str = Field(min_length=1, max_length=64)
    userId: str = Field(pattern=USER_ID_PATTERN)
    amount: Decimal
    currency: str
    location: str = Field(min_length=1, max_length=128)
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    timestamp: datetime
    receivedAt: datetime
    amountUsd: Decimal | None = Field(default=None, gt=0, le=MAX_USD, allow_inf_nan=False)
    fxRate: Decimal | None = Field(default=None, gt=0, le=MAX_USD, allow_inf_nan=False)
    fxRateDate: str | None = Field(default=None, max_length=32)

    _amount = field_validator("amount", mode="before")(classmethod(lambda cls, v: parse_amount(v)))
    _currency = field_validator("currency", mode="before")(
        classmethod(lambda cls, v: parse_currency(v))
    )
    _times = field_validator("timestamp", "receivedAt", mode="before")(
        classmethod(lambda cls, v: parse_timestamp(v))
    )

    @model_validator(mode="after")
    def _event_time_bounded(self, info: ValidationInfo) -> Transaction:
        max_age = (info.context or {}).get(MAX_EVENT_AGE_CONTEXT, DEFAULT_MAX_EVENT_AGE)
        problem = event_time_problem(self.timestamp, self.receivedAt, max_age)
        if problem:
            raise _error("timestamp_range", f"timestamp {problem}")
        return self

    @field_serializer("amount", "amountUsd", "fxRate")
    def _decimal_text(self, amount: Decimal | None) -> str | None:
        return None if amount is None else format(amount, "f")

    @field_serializer("timestamp", "receivedAt")
    def _time_text(self, value: datetime) -> str:
        return isoformat_utc(value)

    @classmethod
    def accept(
        cls,
        request: TransactionRequest,
        *,
        received_at: datetime,
        transaction_id: str | None = None,
        fx_rates_path: str | None = None,
        max_event_age: timedelta = DEFAULT_MAX_EVENT_AGE,
    ) -> Transaction:
        """Turn a validated request into a transaction, applying the checks that need a clock
        or the rate table, and stamping the USD value; raises `FieldProblem`."""
        problems = []
        event_time = request.timestamp or received_at
        problem = event_time_problem(event_time, received_at, max_event_age)
        if problem:
            problems.append({"field": "timestamp", "message": problem})
        rates = load_fx_rates(fx_rates_path)
        if not rates.supports(request.currency):
            problems.append(
                {
                    "field": "currency",
                    "message": f"{request.currency} is not supported (no exchange rate configured)",
                }
            )
        if problems:
            raise FieldProblem(problems)
        return cls.model_validate(
            {
                "transactionId": transaction_id or str(uuid.uuid4()),
                "userId": request.userId,
                "amount": request.amount,
                "currency": request.currency,
                "location": request.location,
                "latitude": request.latitude,
                "longitude": request.longitude,
                "timestamp": event_time,
                "receivedAt": received_at,
                **usd_stamp(request.amount, request.currency, rates),
            },
            context={MAX_EVENT_AGE_CONTEXT: max_event_age},
        )

    def usd_value(self, rates: FxRates) -> Decimal:
        """The USD value stamped at acceptance; from ``rates`` for an older message."""
        if self.amountUsd is not None:
            return self.amountUsd
        return rates.to_usd(self.amount, self.currency)

    def to_json(self) -> str:
        return dumps(self.model_dump(mode="json", exclude_none=True))


def usd_stamp(amount: Decimal, currency: str, rates: FxRates) -> dict[str, Any]:
    """The fields that fix a transaction's USD value at acceptance."""
    rate = rates.usd_per_unit[currency]
    return {"amountUsd": amount * rate, "fxRate": rate, "fxRateDate": rates.as_of or None}


def alert_id(transaction_id: str, alert_type: str) -> str:
    """Deterministic per (transaction, rule): a redelivery can never mint a second alert."""
    return str(uuid.uuid5(_ALERT_NAMESPACE, f"{transaction_id}/{alert_type}"))


class Alert(BaseModel):
    """One fired rule for one transaction, as published on ``fraud-alerts``."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    alertId: str = Field(pattern=ALERT_ID_PATTERN)
    alertType: str = Field(pattern=ALERT_TYPE_PATTERN)
    severity: str = Field(default="medium", pattern=r"^[a-z]{1,16}$")
    transaction: Transaction
    timestamp: datetime
    details: dict[str, Any] = Field(default_factory=dict)
    message: str = Field(default="", max_length=MAX_ALERT_MESSAGE)
    ruleId: str | None = Field(default=None, max_length=64)
    rulesVersion: str | None = Field(default=None, max_length=64)
    riskScore: int | None = Field(default=None, ge=0, le=100)
    decision: str | None = Field(default=None, max_length=16)
    traceId: str | None = Field(default=None, pattern=r"^[0-9a-f]{32}$")
    """The W3C trace id of the transaction (`fraud_common.tracing`)."""

    _times = field_validator("timestamp", mode="before")(
        classmethod(lambda cls, v: parse_timestamp(v))
    )

    @field_validator("details")
    @classmethod
    def _details_bounded(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            size = len(dumps(value).encode())
        except (TypeError, ValueError) as exc:
            raise ValueError("details must be JSON") from exc
        if size > MAX_ALERT_DETAILS_BYTES:
            raise ValueError(f"details are {size} bytes as JSON, at most {MAX_ALERT_DETAILS_BYTES}")
        return value

    @field_serializer("timestamp")
    def _time_text(self, value: datetime) -> str:
        return isoformat_utc(value)

    def to_json(self) -> str:
        return dumps(self.model_dump(mode="json", exclude_none=True))


class DecisionAlert(BaseModel):
    """An alert as ``GET /api/v1/transactions/<id>`` lists it."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    alertId: str
    alertType: str
    severity: str
    message: str = ""


class Reason(BaseModel):
    """A rule that fired and counts towards the decision; ``details`` are its alert's."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    ruleId: str
    alertType: str
    severity: str
    score: int = Field(ge=0, le=100)
    message: str = ""
    details: dict[str, Any] = Field(default_factory=dict)


class RuleError(BaseModel):
    """A rule that raised instead of answering: recorded, and left out of the score."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    ruleId: str
    error: str


DecisionStatus = Literal["approve", "review", "decline", "error"]
_SCORES = (int, type(None))  # a bool would be written true/false: left to model_dump


_QUOTED = encode_basestring
"""A JSON string as `dumps` writes it (the C function ``json`` itself uses when not
ensure_ascii)."""


class Decision(BaseModel):
    """The detector's verdict on one transaction, stored once under ``keys.decision(id)``.

    ``approve``, ``review`` or ``decline`` from the risk score (0-100) of the rules that
    fired (``reasons``); ``error`` when the transaction could not be evaluated at all
    (``error`` says why; no score). Written with SET NX before any alert is sent: a
    redelivery finds it and sends exactly the alerts it names, whatever the rules are
    by then, so a decision never changes once made.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    transactionId: str
    status: DecisionStatus
    riskScore: int | None = Field(default=None, ge=0, le=100)
    reasons: list[Reason] = Field(default_factory=list)
    rulesVersion: str | None = None
    ruleErrors: list[RuleError] = Field(default_factory=list)
    shadowHits: list[Reason] = Field(default_factory=list)
    """Shadow rules that fired: counted, never alerting nor scoring."""
    allowedBy: str | None = None
    """The allow rule (e.g. an allow-list) that approved it, suppressing every other alert."""
    error: str | None = None
    evaluatedAt: datetime
    traceId: str | None = Field(default=None, pattern=r"^[0-9a-f]{32}$")
    """The trace id of the first delivery, so a redelivery's alerts carry that one."""

    _times = field_validator("evaluatedAt", mode="before")(
        classmethod(lambda cls, v: parse_timestamp(v))
    )

    @field_serializer("evaluatedAt")
    def _time_text(self, value: datetime) -> str:
        return isoformat_utc(value)

    def alerts(self) -> list[DecisionAlert]:
        """The alerts this decision raised (one per reason)."""
        return [
            DecisionAlert(
                alertId=alert_id(self.transactionId, r.alertType),
                alertType=r.alertType,
                severity=r.severity,
                message=r.message,
            )
            for r in self.reasons
        ]

    def to_json(self) -> str:
        """Compact JSON without the unset optionals (`dumps` of ``model_dump``).

        A decision without reasons, rule errors nor shadow hits (nearly every one) holds
        only strings, an int and its time: its text is written out directly, the same
        bytes in the same field order at a fraction of the CPU (pinned by
        tests/unit/test_decision_json.py)."""
        score = self.riskScore
        if self.reasons or self.ruleErrors or self.shadowHits or type(score) not in _SCORES:
            return dumps(self.model_dump(mode="json", exclude_none=True))
        text = [
            '{"transactionId":',
            _QUOTED(self.transactionId),
            ',"status":',
            _QUOTED(self.status),
        ]
        if score is not None:
            text += (',"riskScore":', int.__repr__(score))
        text.append(',"reasons":[]')
        if self.rulesVersion is not None:
            text += (',"rulesVersion":', _QUOTED(self.rulesVersion))
        text.append(',"ruleErrors":[],"shadowHits":[]')
        if self.allowedBy is not None:
            text += (',"allowedBy":', _QUOTED(self.allowedBy))
        if self.error is not None:
            text += (',"error":', _QUOTED(self.error))
        text += (',"evaluatedAt":', _QUOTED(isoformat_utc(self.evaluatedAt)))
        if self.traceId is not None:
            text += (',"traceId":', _QUOTED(self.traceId))
        text.append("}")
        return "".join(text)
