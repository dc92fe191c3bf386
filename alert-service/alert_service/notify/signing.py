"""Webhook signatures: ``X-Signature: t=<unix seconds>,v2=<hex HMAC-SHA256>``.

The MAC covers ``f"{t}.{alert_id}.{body}"`` (the timestamp, the alert id sent in
``X-Alert-Id``, and the exact body bytes, joined by dots), so a receiver can refuse a
tampered body, a replay of an old delivery, and a captured delivery re-sent under another
``X-Alert-Id`` to get past its deduplication. Several ``v2=`` values may appear (for a
secret rotation); one matching is enough. Each webhook URL may have its own secret
(``WEBHOOK_SECRETS``), so a receiver can only verify, never forge, another's deliveries.
``v2`` replaced ``v1`` (which covered ``"<t>.<body>"`` only).
"""

from __future__ import annotations

import hashlib
import hmac
import time

HEADER = "X-Signature"
VERSION = "v2"
DEFAULT_TOLERANCE_SECONDS = 300


def _bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def compute_signature(secret: str | bytes, timestamp: int, alert_id: str, body: str | bytes) -> str:
    """Hex HMAC-SHA256 of ``f"{timestamp}.{alert_id}.{body}"`` under ``secret``."""
    message = f"{timestamp}.{alert_id}.".encode() + _bytes(body)
    return hmac.new(_bytes(secret), message, hashlib.sha256).hexdigest()


def signature_header(
    secret: str | bytes, alert_id: str, body: str | bytes, timestamp: int | None = None
) -> str:
    """The ``X-Signature`` value for alert ``alert_id``'s ``body``, signed now (or at
    ``timestamp``)."""
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},{VERSION}={compute_signature(secret, t, alert_id, body)}"


def verify_signature(
    secret: str | bytes,
    header: str | None,
    alert_id: str | None,
    body: str | bytes,
    tolerance: float | None = DEFAULT_TOLERANCE_SECONDS,
    *,
    now: float | None = None,
) -> bool:
    """True when ``header`` signs ``alert_id`` (the ``X-Alert-Id`` header) and ``body``
    with ``secret`` and its timestamp is within ``tolerance`` seconds of now (None: no age
    check). Never raises on a bad header."""
    if not header or not alert_id:
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
        elif name == VERSION and value:
            candidates.append(value.lower())
    if timestamp is None or not candidates:
        return False
    current = time.time() if now is None else now
    if tolerance is not None and abs(current - timestamp) > tolerance:
        return False
    expected = compute_signature(secret, timestamp, alert_id, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in candidates)
