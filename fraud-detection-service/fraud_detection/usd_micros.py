"""USD amounts as exact integers of micro-USD, the unit the user state keeps them in.

The state's sums and comparisons must be exact, and a Lua number (a double) is not past
2**53 (1e12 USD is 1e18 micro-USD), so amounts cross Redis as decimal digits and only
Python adds them. A USD value with at most 6 decimals converts exactly; one with more
(a converted amount: amount times rate) is rounded half-even to the micro-USD, which is
the only rounding anywhere in the amount rules.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Context, Decimal

MICROS_PER_USD = 10**6
_EXACT = Context(prec=100)  # wide enough that no step below ever rounds by itself
_CENT = Decimal("0.01")


def to_micros(usd: Decimal) -> int:
    """``usd`` in micro-USD, rounded half-even past the 6th decimal."""
    return int(usd.scaleb(6, _EXACT).to_integral_value(ROUND_HALF_EVEN, _EXACT))


def from_micros(micros: int) -> Decimal:
    """The exact USD value of ``micros``, shown with 2 to 6 decimals (``12.50``,
    ``0.000001``), never in exponent form."""
    usd = Decimal(micros).scaleb(-6, _EXACT)
    cents = usd.quantize(_CENT, context=_EXACT)
    return cents if cents == usd else usd.normalize(_EXACT)


def exceeds(micros: int, usd: Decimal) -> bool:
    """``micros`` strictly above ``usd``, compared exactly (``usd`` may have any number
    of decimals)."""
    return Decimal(micros) > usd.scaleb(6, _EXACT)
