"""API keys: the one place that reads a key list from the environment and checks a
presented ``X-API-Key`` against it (the transaction-service's ``API_KEYS``, the
detector's ``ADMIN_API_KEYS``)."""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from typing import Annotated

from pydantic import BeforeValidator, SecretStr
from pydantic_settings import NoDecode

from fraud_common.http_errors import ApiError

HEADER = "X-API-Key"


def split_keys(value: object) -> object:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``; anything else is left to pydantic."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


KeyList = Annotated[list[SecretStr], NoDecode, BeforeValidator(split_keys)]
"""A settings field of comma-separated keys (empty: no key required), e.g.
``api_keys: KeyList = Field(default_factory=list)``."""


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

    def position(self, presented: str | None) -> int | None:
        """1-based position of ``presented`` in the configured list (None: not a key), to
        name who acted (``key-1``) without ever naming the key. Constant time, like
        `allows`."""
        if not presented:
            return None
        candidate = presented.encode()
        found: int | None = None
        for index, key in enumerate(self._keys, start=1):
            if hmac.compare_digest(candidate, key) and found is None:
                found = index
        return found

    def require(self, presented: str | None) -> None:
        """Raise the contract's 401 unless ``presented`` (the header's value) is allowed."""
        if not self.allows(presented):
            raise ApiError(
                401,
                "unauthorized",
                f"a valid {HEADER} header is required",
                headers={"WWW-Authenticate": HEADER},
            )
