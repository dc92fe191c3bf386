"""Paging a sorted set newest first with an opaque cursor.

The order is (score, member) descending, which is Redis's own ``ZREVRANGE`` order (equal
scores by member, reverse lexicographic). A cursor is the last item of a page, (score,
member), base64url-encoded; the next page is the members after it in that order: those
with the same score and a smaller member, then those with a smaller score. A case that
gains activity while someone pages moves to the front (it is seen again on page one).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

import redis


class BadCursor(ValueError):
    pass


@dataclass(frozen=True)
class Page:
    ids: list[str]
    next_cursor: str | None
    items: list[dict[str, Any]] = field(default_factory=list)


def encode_cursor(score: float, member: str) -> str:
    raw = json.dumps([int(score), member], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        score, member = json.loads(raw)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise BadCursor("is not a cursor this API gave") from exc
    if not isinstance(score, int) or not isinstance(member, str) or len(member) > 128:
        raise BadCursor("is not a cursor this API gave")
    return score, member


def read_page(client: redis.Redis, key: str, *, limit: int, cursor: str | None) -> Page:
    """Up to ``limit`` members after ``cursor`` (from the start when None)."""
    rows: list[tuple[str, float]]
    if cursor is None:
        rows = _pairs(client.zrevrange(key, 0, limit, withscores=True))
    else:
        score, member = decode_cursor(cursor)
        ties = _pairs(client.zrevrangebyscore(key, score, score, withscores=True))
        rows = [(m, s) for m, s in ties if m < member]
        if len(rows) <= limit:
            rest = client.zrevrangebyscore(
                key, f"({score}", "-inf", start=0, num=limit + 1 - len(rows), withscores=True
            )
            rows += _pairs(rest)
    page = rows[:limit]
    more = len(rows) > limit
    next_cursor = encode_cursor(page[-1][1], page[-1][0]) if more and page else None
    return Page(ids=[m for m, _ in page], next_cursor=next_cursor)


def _pairs(reply: Any) -> list[tuple[str, float]]:
    """A ``WITHSCORES`` reply as (member, score) pairs."""
    return [(str(member), float(score)) for member, score in reply]
