"""Exact JSON: no binary float anywhere between the HTTP body and what is published."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from fraud_common.jsonutil import InvalidJson, dumps, isoformat_utc, loads_exact


def test_numbers_stay_exact() -> None:
    parsed = loads_exact(b'{"a": 0.1, "b": 12345678901234567890.000000001, "c": 7}')
    assert parsed == {"a": Decimal("0.1"), "b": Decimal("12345678901234567890.000000001"), "c": 7}
    assert dumps(parsed) == '{"a":"0.1","b":"12345678901234567890.000000001","c":7}'


@pytest.mark.parametrize("body", [b"NaN", b'{"a": Infinity}', b'{"a": -Infinity}'])
def test_non_finite_literals_are_refused(body: bytes) -> None:
    with pytest.raises(InvalidJson):
        loads_exact(body)


@pytest.mark.parametrize("body", [b"", b"{", b'{"a": 1,}', b"\xff\xfe{}", b"[" * 100000])
def test_broken_documents(body: bytes) -> None:
    with pytest.raises(InvalidJson):
        loads_exact(body)


def test_times_are_utc_with_z() -> None:
    local = datetime(2026, 1, 31, 14, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    assert isoformat_utc(local) == "2026-01-31T12:00:00.123Z"
    assert dumps({"t": datetime(2026, 1, 1, tzinfo=UTC)}) == '{"t":"2026-01-01T00:00:00.000Z"}'
