"""Realistic, reproducible traffic: many users, each at home in one of many places, ~1%
of transactions above the large-amount threshold (so ~1% alert), a fresh
Idempotency-Key for every request.

Item ``i`` is a pure function of (run, seed, i), so any thread can build any item and a
rerun with the same seed sends the same traffic. Users are taken in turn (item ``i``
belongs to user ``i % users``), so one user's transactions are ``users`` items apart:
with the default 100,000 users even 2,000 POSTs/s give each user one transaction every
50 s, and neither the rapid-transactions rule (6 in 30 s) nor the location rule (each
user stays at home) fires; only the large amounts alert.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

PLACES = (
    "New York",
    "London",
    "Paris",
    "Tokyo",
    "Berlin",
    "Madrid",
    "Toronto",
    "Sydney",
    "Chicago",
    "Los Angeles",
    "Rome",
    "Amsterdam",
    "Dublin",
    "Singapore",
    "Mumbai",
    "Mexico City",
    "Seoul",
    "Vienna",
    "Lisbon",
    "Stockholm",
)
LARGE_AMOUNT = "15000.00"  # USD, above the shipped large-amount threshold (10,000)
CURRENCIES = (("USD", 0.8), ("EUR", 0.15), ("GBP", 0.05))


@dataclass(frozen=True)
class Traffic:
    """The items of one run (``run`` keeps user ids and Idempotency-Keys fresh)."""

    run: str
    users: int = 100_000
    alert_share: float = 0.01
    seed: int = 0

    def __post_init__(self) -> None:
        if self.users < 1:
            raise ValueError("users must be at least 1")
        if not 0 <= self.alert_share <= 1:
            raise ValueError("alert_share must be in [0, 1]")

    def user(self, index: int) -> str:
        return f"bench-{self.run}-{index % self.users}"

    def place(self, index: int) -> str:
        user_number = index % self.users
        return PLACES[(user_number * 7919 + self.seed) % len(PLACES)]

    def alerting(self, index: int) -> bool:
        """Whether item ``index`` is a large amount (the one rule it can fire)."""
        return self._rng(index).random() < self.alert_share

    def body(self, index: int) -> dict[str, Any]:
        """The JSON body of a single POST."""
        rng = self._rng(index)
        if rng.random() < self.alert_share:
            amount, currency = LARGE_AMOUNT, "USD"
        else:  # at most 999.99 in any of the currencies: far below the threshold
            amount = str(Decimal(rng.randrange(100, 100_000)) / 100)
            currency = _pick_currency(rng.random())
        return {
            "userId": self.user(index),
            "amount": amount,
            "currency": currency,
            "location": self.place(index),
        }

    def batch(self, number: int, size: int) -> dict[str, Any]:
        """The body of batch ``number`` (items ``number*size`` ..)."""
        start = number * size
        return {"transactions": [self.body(i) for i in range(start, start + size)]}

    def idempotency_key(self, index: int, kind: str = "tx") -> str:
        return f"bench-{self.run}-{kind}-{index}"

    def event_time(self, index: int, start: datetime, spacing: timedelta) -> datetime:
        """For backlogs with event times: the user's n-th item ``spacing`` after its
        (n-1)-th, from ``start`` (so no window rule fires either)."""
        return start + spacing * (index // self.users)

    def _rng(self, index: int) -> random.Random:
        return random.Random(f"{self.seed}:{index}")  # noqa: S311 - load, not security


def _pick_currency(draw: float) -> str:
    for code, share in CURRENCIES:
        if draw < share:
            return code
        draw -= share
    return CURRENCIES[0][0]
