"""Reading a JSON request body: media type, size limit and exact parsing."""

from __future__ import annotations

from typing import Any

from flask import request

from fraud_common.http_errors import ApiError
from fraud_common.jsonutil import InvalidJson, loads_exact

_CHUNK = 64 * 1024


def read_json_body(limit: int) -> Any:
    """The parsed body (numbers as int/Decimal); `ApiError` 415, 413 or 400 otherwise.

    The size check does not trust ``Content-Length`` alone: a chunked body has none, so
    at most ``limit + 1`` bytes are read and one byte too many means 413.
    """
    charset = request.mimetype_params.get("charset", "utf-8").lower()
    if request.mimetype != "application/json" or charset not in ("utf-8", "utf8"):
        raise ApiError(
            415, "unsupported_media_type", "Content-Type must be application/json (UTF-8)"
        )
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit)
    data = _read_at_most(limit + 1)
    if len(data) > limit:
        raise _too_large(limit)
    try:
        return loads_exact(data)
    except InvalidJson as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from exc


def has_body() -> bool:
    """Whether the request carries a body at all (a length above 0, or chunked)."""
    if request.content_length is not None:
        return request.content_length > 0
    return "chunked" in request.headers.get("Transfer-Encoding", "").lower()


def _read_at_most(size: int) -> bytes:
    stream = request.stream
    parts: list[bytes] = []
    remaining = size
    while remaining > 0:
        part = stream.read(min(remaining, _CHUNK))
        if not part:
            break
        parts.append(part)
        remaining -= len(part)
    return b"".join(parts)


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "payload_too_large", f"the body is larger than {limit} bytes")
