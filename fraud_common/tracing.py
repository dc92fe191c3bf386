"""W3C trace context (https://www.w3.org/TR/trace-context/): the ``traceparent`` of a
transaction, from the POST through Kafka headers to the alert, and the trace id of the
transaction being handled, which `TraceIdFilter` puts on every log record.

Only version ``00`` is understood; a header that is not a valid one (wrong length, upper
case hex, an all-zero trace or parent id, version ``ff``) is replaced by a new trace, as
the specification asks of a receiver that cannot parse it. No OpenTelemetry: the ids
travel and are logged; nothing is exported.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

HEADER = "traceparent"
TRACE_ID_PATTERN = r"^[0-9a-f]{32}$"

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_current: ContextVar[str | None] = ContextVar("fraud_trace_id", default=None)


@dataclass(frozen=True)
class TraceParent:
    trace_id: str
    parent_id: str
    flags: str = "01"

    def header(self) -> str:
        return f"00-{self.trace_id}-{self.parent_id}-{self.flags}"

    def child(self) -> TraceParent:
        """The same trace with a new span id: what a service passes on downstream."""
        return TraceParent(self.trace_id, _span_id(), self.flags)


def parse(value: str | bytes | None) -> TraceParent | None:
    """The trace context of a ``traceparent`` value, or None when it is not a valid one."""
    if isinstance(value, bytes):
        value = value.decode("ascii", errors="replace")
    if not value:
        return None
    match = _TRACEPARENT.match(value.strip())
    if match is None:
        return None
    trace_id, parent_id, flags = match.groups()
    if trace_id == "0" * 32 or parent_id == "0" * 16:
        return None
    return TraceParent(trace_id, parent_id, flags)


def new_trace() -> TraceParent:
    """A new sampled trace."""
    trace_id = secrets.token_hex(16)
    while trace_id == "0" * 32:  # pragma: no cover - one chance in 2**128
        trace_id = secrets.token_hex(16)
    return TraceParent(trace_id, _span_id())


def new_span(trace_id: str) -> TraceParent:
    """A new span in the trace ``trace_id`` (e.g. an alert of a stored decision's trace)."""
    return TraceParent(trace_id, _span_id())


def continue_or_start(value: str | bytes | None) -> TraceParent:
    """The received trace with a new span of ours, or a new trace when none is valid."""
    received = parse(value)
    return new_trace() if received is None else received.child()


def current_trace_id() -> str | None:
    return _current.get()


@contextmanager
def trace_context(trace_id: str | None) -> Iterator[None]:
    """Log records made inside carry ``trace_id`` (none when ``trace_id`` is None)."""
    token = _current.set(trace_id)
    try:
        yield
    finally:
        _current.reset(token)


def bind(trace_id: str | None) -> object:
    """Set the current trace id until `unbind` (for request hooks that cannot use a with)."""
    return _current.set(trace_id)


def unbind(token: object) -> None:
    _current.reset(token)  # type: ignore[arg-type]


class TraceIdFilter(logging.Filter):
    """Adds ``trace_id`` to a record made while a trace is current, unless the record
    names one itself (``extra={"trace_id": ...}``, for lines about another transaction)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "trace_id", None) is None:
            trace_id = _current.get()
            if trace_id is not None:
                record.trace_id = trace_id
        return True


def _span_id() -> str:
    span = secrets.token_hex(8)
    while span == "0" * 16:  # pragma: no cover
        span = secrets.token_hex(8)
    return span
