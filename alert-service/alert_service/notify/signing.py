"""Webhook signatures: ``X-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>``.

The MAC covers ``f"{t}.{body}"`` (the timestamp, a dot, the exact body bytes), so a
receiver can refuse both a tampered body and a replay of an old delivery. Several
``v1=`` values may appear (for a secret rotation); one matching is enough.
"""

from __future__ import annotations

import hashlib
import hmac
import time

HEADER = "X-Signature"
DEFAULT_TOLERANCE_SECONDS = 300


def _bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def compute_signature(secret: str | bytes, timestamp: int, body: str | bytes) -> str:
    """Hex HMAC-SHA256 of ``f"{timestamp}.{body}"`` under ``secret``."""
    message = f"{timestamp}.".encode() + _bytes(body)
    return hmac.new(_bytes(secret), message, hashlib.sha256).hexdigest()


def signature_header(secret: str | bytes, body: str | bytes, timestamp: int | None = None) -> str:
    """The ``X-Signature`` value for ``body``, signed now (or at ``timestamp``)."""
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},v1={compute_signature(secret, t, body)}"


def verify_signature(
    secret: str | bytes,
    header: str | None,
    body: str | bytes,
    tolerance: float | None = DEFAULT_TOLERANCE_SECONDS,
    *,
    now: float | None = None,
) -> bool:
    """True when ``header`` signs ``body`` with ``secret`` and its timestamp is within
    ``tolerance`` seconds of now (None: no age check). Never raises on a bad header."""
    if not header:
        return False
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t":
            try:
                timestamp = int(value)
            except ValueError:
                return False
        elif name == "v1" and value:
            candidates.append(value.lower())
    if timestamp is None or not candidates:
        return False
    current = time.time() if now is None else now
    if tolerance is not None and abs(current - timestamp) > tolerance:
        return False
    expected = compute_signature(secret, timestamp, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in candidates)
