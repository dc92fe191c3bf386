"""USD amounts as integer micro-USD: exact to 6 decimals, half-even past that."""

from __future__ import annotations

from decimal import Decimal

import pytest

from fraud_detection.usd_micros import exceeds, from_micros, to_micros


@pytest.mark.parametrize(
    ("usd", "micros"),
    [
        ("0.000001", 1),
        ("12.5", 12_500_000),
        ("1000000000000", 10**18),  # 1e12 USD: past 2**53 in micro-USD, still exact
        ("9999999999999999.999999", 9_999_999_999_999_999_999_999),
        ("0.0000005", 0),  # half to even: 0
        ("0.0000015", 2),  # half to even: 2
        ("0.0000025", 2),
        ("0.00000051", 1),  # above half
        ("1.000000499999999999", 1_000_000),
    ],
)
def test_to_micros(usd: str, micros: int) -> None:
    assert to_micros(Decimal(usd)) == micros


@pytest.mark.parametrize(
    ("micros", "text"),
    [
        (0, "0.00"),
        (1, "0.000001"),
        (12_500_000, "12.50"),
        (10**18, "1000000000000.00"),
        (10**18 + 1, "1000000000000.000001"),
        (1_234_567, "1.234567"),
        (1_230_000, "1.23"),
        (1_500_000_000, "1500.00"),
        (1_500_100_000, "1500.10"),
    ],
)
def test_from_micros_is_exact_and_plain(micros: int, text: str) -> None:
    assert str(from_micros(micros)) == text
    assert to_micros(from_micros(micros)) == micros


def test_exceeds_is_strict_and_exact() -> None:
    limit = Decimal("100")
    assert not exceeds(100_000_000, limit)
    assert exceeds(100_000_001, limit)
    assert exceeds(100_000_000, Decimal("99.9999999"))  # a limit finer than a micro-USD
    assert not exceeds(99_999_999, Decimal("99.9999999"))
    assert not exceeds(3 * 10**18, Decimal("3000000000000"))
    assert exceeds(3 * 10**18 + 1, Decimal("3000000000000"))
