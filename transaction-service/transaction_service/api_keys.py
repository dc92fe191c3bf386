"""API keys: when configured, every ``/api/v1/transactions*`` call must present one."""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from pydantic import SecretStr

HEADER = "X-API-Key"


class ApiKeys:
    """The configured keys; an empty set means the API is open."""

    def __init__(self, keys: Sequence[SecretStr]) -> None:
        self._keys = [key.get_secret_value().encode() for key in keys]

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def allows(self, presented: str | None) -> bool:
        """Constant-time comparison against every key (no early exit on a match)."""
        if not self._keys:
            return True
        if not presented:
            return False
        candidate = presented.encode()
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(candidate, key)
        return matched
