"""Exact JSON: numbers become Decimal, NaN/Infinity are refused, Decimal is written as a string."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any


class InvalidJson(ValueError):
    """The bytes are not one valid JSON document (bad UTF-8 included)."""


def _refuse_constant(name: str) -> Any:
    raise InvalidJson(f"{name} is not valid JSON")


def loads_exact(data: bytes | str) -> Any:
    """Parse JSON keeping every number exact (ints stay int, fractions become Decimal)."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        return json.loads(text, parse_float=Decimal, parse_constant=_refuse_constant)
    except UnicodeDecodeError as exc:
        raise InvalidJson(f"body is not valid UTF-8 (byte {exc.start})") from exc
    except json.JSONDecodeError as exc:
        raise InvalidJson(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    except RecursionError as exc:
        raise InvalidJson("JSON nested too deeply") from exc
    except InvalidJson:
        raise
    except ValueError as exc:  # e.g. an integer literal over Python's 4300-digit limit
        raise InvalidJson(str(exc)) from exc


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return isoformat_utc(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(value: Any) -> str:
    """Compact JSON; Decimal as a plain decimal string, datetime as ISO 8601 UTC."""
    return json.dumps(value, default=_default, separators=(",", ":"), ensure_ascii=False)


def isoformat_utc(value: datetime) -> str:
    """``2026-11-28T10:00:00.123Z``: UTC, millisecond precision, Z suffix."""
    from datetime import UTC

    text = value.astimezone(UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")
