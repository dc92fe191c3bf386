"""The contract's field table for ``POST /api/v1/transactions``, rule by rule.

Bodies are written as JSON text and parsed with `loads_exact`, exactly as the service
does, so number literals (``1e400``, ``NaN``) reach validation as a client sends them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from pydantic import ValidationError

from fraud_common.jsonutil import InvalidJson, loads_exact
from fraud_common.money import load_fx_rates
from fraud_common.schemas import (
    FieldProblem,
    Transaction,
    TransactionRequest,
    validation_details,
)

NOW = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
BASE = {"userId": "user-1", "amount": "12.50", "currency": "USD", "location": "New York"}


def body_text(**overrides: str | None) -> str:
    """BASE as JSON text; each override is a raw JSON fragment (None removes the field)."""
    fields = {name: json.dumps(value) for name, value in BASE.items()}
    for name, raw in overrides.items():
        if raw is None:
            fields.pop(name, None)
        else:
            fields[name] = raw
    return "{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in fields.items()) + "}"


def accept(text: str) -> Transaction:
    request = TransactionRequest.model_validate(loads_exact(text))
    return Transaction.accept(request, received_at=NOW, transaction_id="txn-1")


def problems(text: str) -> list[dict[str, str]]:
    try:
        accept(text)
    except ValidationError as exc:
        return validation_details(exc)
    except FieldProblem as problem:
        return problem.details
    pytest.fail(f"accepted {text}")


def fields_of(text: str) -> list[str]:
    return [d["field"] for d in problems(text)]


# --- amount -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("12.5", "12.5"),
        ('"12.50"', "12.50"),
        ("7", "7"),
        ("0.01", "0.01"),
        ("1e12", "1000000000000"),
        ('"1E12"', "1000000000000"),
        ("1000000000000", "1000000000000"),
        ('"999999999999.999999999999999999"', "999999999999.999999999999999999"),
        ("0.000000000000000001", "0.000000000000000001"),
    ],
)
def test_amount_accepted_and_kept_exactly(raw: str, stored: str) -> None:
    transaction = accept(body_text(amount=raw))
    assert json.loads(transaction.to_json())["amount"] == stored


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("1000000000000.01", "at most 1e12"),
        ('"1000000000000.01"', "at most 1e12"),
        ("0", "greater than 0"),
        ('"0.00"', "greater than 0"),
        ("-5", "greater than 0"),
        ('"-5"', "greater than 0"),
        ("1e400", "at most 1e12"),
        ('"1e400"', "at most 1e12"),
        ("1e-400", "decimal places"),
        ('"0.0000000000000000001"', "decimal places"),
        ("true", "number or a numeric string"),
        ("false", "number or a numeric string"),
        ("null", "number or a numeric string"),
        ("[1]", "number or a numeric string"),
        ('{"v": 1}', "number or a numeric string"),
        ('"abc"', "decimal number"),
        ('""', "decimal number"),
        ('"NaN"', "decimal number"),
        ('"Infinity"', "decimal number"),
        ('"0x10"', "decimal number"),
        ('"1 000"', "decimal number"),
        ('"' + "1" * 65 + '"', "decimal number"),
    ],
)
def test_amount_refused(raw: str, message: str) -> None:
    details = problems(body_text(amount=raw))
    assert [d["field"] for d in details] == ["amount"]
    assert message in details[0]["message"]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_literals_are_not_json(literal: str) -> None:
    with pytest.raises(InvalidJson):
        loads_exact(body_text(amount=literal))


def test_decimal_arithmetic_stays_exact_through_to_json() -> None:
    parts = [accept(body_text(amount=raw)) for raw in ("0.1", "0.2")]
    assert parts[0].amount + parts[1].amount == Decimal("0.3")
    published = json.loads(parts[0].to_json())
    assert published["amount"] == "0.1"
    big = accept(body_text(amount="123456789012.123456789"))
    assert json.loads(big.to_json())["amount"] == "123456789012.123456789"
    assert isinstance(big.amount, Decimal)


# --- currency -----------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "stored"), [('"usd"', "USD"), ('"Eur"', "EUR"), ('"jpy"', "JPY")])
def test_currency_case_insensitive_stored_upper(raw: str, stored: str) -> None:
    assert accept(body_text(currency=raw)).currency == stored


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ('"XYZ"', "unknown ISO 4217"),
        ('"usdd"', "unknown ISO 4217"),
        ('""', "unknown ISO 4217"),
        ("840", "ISO 4217 code"),
        ('"XAU"', "not supported"),  # a real ISO 4217 code, but no exchange rate
    ],
)
def test_currency_refused(raw: str, message: str) -> None:
    details = problems(body_text(currency=raw))
    assert [d["field"] for d in details] == ["currency"]
    assert message in details[0]["message"]


# --- userId -------------------------------------------------------------------------


@pytest.mark.parametrize("user_id", ["u", "a" * 64, "A-Za-z0-9_.:@-", "user@example.com"])
def test_user_id_accepted(user_id: str) -> None:
    assert accept(body_text(userId=json.dumps(user_id))).userId == user_id


@pytest.mark.parametrize(
    "raw",
    [
        json.dumps("a" * 65),
        '""',
        '"bad user"',
        '"caf\\u00e9"',
        '"abc\\n"',
        '"a/b"',
        "123",
        "null",
    ],
)
def test_user_id_refused(raw: str) -> None:
    assert fields_of(body_text(userId=raw)) == ["userId"]


# --- location -----------------------------------------------------------------------


@pytest.mark.parametrize("location", ["X", "x" * 128, "São Paulo", "New York, NY"])
def test_location_accepted(location: str) -> None:
    assert accept(body_text(location=json.dumps(location))).location == location


@pytest.mark.parametrize("raw", [json.dumps("x" * 129), '""', '"   "', "5", "null"])
def test_location_refused(raw: str) -> None:
    assert fields_of(body_text(location=raw)) == ["location"]


# --- latitude / longitude -----------------------------------------------------------


@pytest.mark.parametrize(
    ("lat", "lon"), [("40.7128", "-74.006"), ("90", "180"), ("-90", "-180"), ("0", "0")]
)
def test_coordinates_accepted(lat: str, lon: str) -> None:
    transaction = accept(body_text(latitude=lat, longitude=lon))
    assert (transaction.latitude, transaction.longitude) == (float(lat), float(lon))


@pytest.mark.parametrize(
    ("lat", "lon", "field"),
    [
        ("40.7", None, "body"),  # both or neither
        (None, "-74", "body"),
        ("90.0001", "0", "latitude"),
        ("-90.5", "0", "latitude"),
        ("0", "180.5", "longitude"),
        ("0", "-181", "longitude"),
        ('"10"', "0", "latitude"),
        ("true", "0", "latitude"),
        ("1" + "0" * 400, "0", "latitude"),  # too large even for a float
    ],
)
def test_coordinates_refused(lat: str | None, lon: str | None, field: str) -> None:
    details = problems(body_text(latitude=lat, longitude=lon))
    assert [d["field"] for d in details] == [field]
    if field == "body":
        assert "latitude and longitude go together" in details[0]["message"]


# --- timestamp ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('"2026-01-31T14:00:00+02:00"', datetime(2026, 1, 31, 12, 0, tzinfo=UTC)),
        ('"2026-01-31T11:59:00Z"', datetime(2026, 1, 31, 11, 59, tzinfo=UTC)),
        (str(int(NOW.timestamp()) - 60), NOW - timedelta(minutes=1)),
        (f"{int(NOW.timestamp())}.5", NOW + timedelta(milliseconds=500)),
        (json.dumps((NOW + timedelta(minutes=4)).isoformat()), NOW + timedelta(minutes=4)),
        (None, NOW),  # absent: the time received
        ('"2026-02-01T02:00:00+14:00"', datetime(2026, 1, 31, 12, 0, tzinfo=UTC)),
        ('"2026-01-31T00:00:00-12:00"', datetime(2026, 1, 31, 12, 0, tzinfo=UTC)),
        (
            json.dumps((NOW - timedelta(days=6, hours=23)).isoformat()),
            NOW - timedelta(days=7) + timedelta(hours=1),
        ),
    ],
)
def test_timestamp_accepted_in_utc(raw: str | None, expected: datetime) -> None:
    assert accept(body_text(timestamp=raw)).timestamp == expected


def test_the_event_age_bound_is_a_setting() -> None:
    request = TransactionRequest.model_validate(
        loads_exact(body_text(timestamp=json.dumps((NOW - timedelta(days=20)).isoformat())))
    )
    kept = Transaction.accept(request, received_at=NOW, max_event_age=timedelta(days=30))
    assert kept.timestamp == NOW - timedelta(days=20)
    with pytest.raises(ValidationError, match="seconds in the past"):  # and on decode
        Transaction.model_validate_json(kept.to_json(), context={"max_event_age": timedelta(1)})


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ('"2026-01-31T12:00:00"', "UTC offset"),
        ('"yesterday"', "ISO 8601"),
        (json.dumps((NOW + timedelta(minutes=6)).isoformat()), "5 minutes in the future"),
        (str(int((NOW + timedelta(minutes=6)).timestamp())), "5 minutes in the future"),
        ("true", "ISO 8601 string or epoch seconds"),
        ("1e400", "out of range"),
        ("1e300", "out of range"),
        ('"0001-01-01T00:00:00Z"', "before 1970"),
        ('"0001-01-01T00:00:00+01:00"', "before 1970"),  # no UTC form at all
        ('"1900-01-01T00:00:00Z"', "before 1970"),
        ("-1", "before 1970"),
        ("0", "seconds in the past"),  # 1970-01-01: after 1970, but decades old
        (json.dumps((NOW - timedelta(days=8)).isoformat()), "seconds in the past"),
        ('"2016-12-31T23:59:60Z"', "leap second"),
        ('"9999-12-31T23:59:59Z"', "too far in the future"),
    ],
)
def test_timestamp_refused(raw: str, message: str) -> None:
    details = problems(body_text(timestamp=raw))
    assert [d["field"] for d in details] == ["timestamp"]
    assert message in details[0]["message"]


# --- the body as a whole ------------------------------------------------------------


def test_unknown_field_is_named() -> None:
    details = problems(body_text(merchant='"ACME"'))
    assert details == [{"field": "merchant", "message": "is not a known field"}]


@pytest.mark.parametrize("missing", ["userId", "amount", "currency", "location"])
def test_required_fields(missing: str) -> None:
    assert problems(body_text(**{missing: None})) == [{"field": missing, "message": "is required"}]


def test_every_bad_field_is_reported_at_once() -> None:
    text = body_text(userId='""', amount="-1", currency='"XYZ"', extra="1")
    assert sorted(fields_of(text)) == ["amount", "currency", "extra", "userId"]


def test_accepted_transaction_round_trips() -> None:
    text = body_text(latitude="40.7128", longitude="-74.006", timestamp='"2026-01-31T11:00:00Z"')
    published = accept(text).to_json()
    again = Transaction.model_validate_json(published)
    assert again == accept(text)
    assert json.loads(published) == {
        "transactionId": "txn-1",
        "userId": "user-1",
        "amount": "12.50",
        "currency": "USD",
        "location": "New York",
        "latitude": 40.7128,
        "longitude": -74.006,
        "timestamp": "2026-01-31T11:00:00.000Z",
        "receivedAt": "2026-01-31T12:00:00.000Z",
        "amountUsd": "12.50",
        "fxRate": "1",
        "fxRateDate": load_fx_rates().as_of,
    }
