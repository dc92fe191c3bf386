"""How often and when a failed delivery is tried again."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """At most ``max_attempts`` attempts; before attempt n+1 a wait drawn uniformly from
    ``[0, min(max_delay, initial_delay * 2**(n-1))]`` ("full jitter"), so that many
    alerts failing together do not come back together."""

    max_attempts: int
    initial_delay: float
    max_delay: float

    def delay(self, failed_attempts: int) -> float:
        """Seconds to wait after the ``failed_attempts``-th failure (1 = the first)."""
        exponent = max(failed_attempts - 1, 0)
        ceiling = min(self.max_delay, self.initial_delay * 2 ** min(exponent, 62))
        return random.uniform(0.0, ceiling)  # noqa: S311 - jitter, not security

    def exhausted(self, failed_attempts: int) -> bool:
        return failed_attempts >= self.max_attempts
