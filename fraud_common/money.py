"""Money: exact decimal amounts, ISO 4217 currencies and conversion to USD.

Amounts are `Decimal` from the HTTP body to Redis and Kafka (they travel as JSON
strings); a binary float never touches them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from importlib import resources
from pathlib import Path

import pycountry

MAX_AMOUNT = Decimal("1e12")


@cache
def iso_currency_codes() -> frozenset[str]:
    """Every active ISO 4217 alpha-3 code (from pycountry)."""
    return frozenset(c.alpha_3 for c in pycountry.currencies)


@dataclass(frozen=True)
class FxRates:
    """USD value of one unit of each supported currency."""

    usd_per_unit: dict[str, Decimal]
    as_of: str

    def supports(self, currency: str) -> bool:
        return currency in self.usd_per_unit

    def to_usd(self, amount: Decimal, currency: str) -> Decimal:
        """Convert exactly; raises KeyError for a currency without a rate."""
        return amount * self.usd_per_unit[currency]

    @classmethod
    def from_json(cls, text: str) -> FxRates:
        raw = json.loads(text)
        rates = {code.upper(): Decimal(str(v)) for code, v in raw["usdPer"].items()}
        for code, rate in rates.items():
            if code not in iso_currency_codes() or not rate > 0:
                raise ValueError(f"bad FX rate entry {code}={rate}")
        return cls(usd_per_unit=rates, as_of=str(raw.get("asOf", "")))


@cache
def load_fx_rates(path: str | None = None) -> FxRates:
    """Rates from ``path`` (FX_RATES_PATH), else the reference table shipped here."""
    if path:
        return FxRates.from_json(Path(path).read_text(encoding="utf-8"))
    text = resources.files("fraud_common.data").joinpath("fx_rates.json").read_text("utf-8")
    return FxRates.from_json(text)
