"""W3C traceparent parsing, new traces, and the trace id on log records."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from fraud_common import tracing
from fraud_common.logging_setup import configure_logging

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
VALID = f"00-{TRACE}-{PARENT}-01"


def test_a_valid_traceparent_is_read() -> None:
    parsed = tracing.parse(VALID)
    assert parsed == tracing.TraceParent(TRACE, PARENT, "01")
    assert parsed.header() == VALID
    assert tracing.parse(VALID.encode()) == parsed
    assert tracing.parse(f"00-{TRACE}-{PARENT}-00") == tracing.TraceParent(TRACE, PARENT, "00")


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "garbage",
        f"01-{TRACE}-{PARENT}-01",  # only version 00 is understood
        f"ff-{TRACE}-{PARENT}-01",
        f"00-{'0' * 32}-{PARENT}-01",  # all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero parent id
        f"00-{TRACE.upper()}-{PARENT}-01",  # hex is lower case
        f"00-{TRACE[:-1]}-{PARENT}-01",
        f"00-{TRACE}-{PARENT}0-01",
        f"00-{TRACE}-{PARENT}-1",
        f"00-{TRACE}-{PARENT}-01-extra",
        f"00_{TRACE}_{PARENT}_01",
    ],
)
def test_an_invalid_traceparent_is_refused_and_replaced(value: str | None) -> None:
    assert tracing.parse(value) is None
    started = tracing.continue_or_start(value)
    assert tracing.parse(started.header()) == started
    assert started.trace_id != TRACE


def test_a_received_trace_is_continued_with_a_new_span() -> None:
    child = tracing.continue_or_start(VALID)
    assert child.trace_id == TRACE and child.flags == "01"
    assert child.parent_id != PARENT and len(child.parent_id) == 16


def test_new_traces_are_valid_and_distinct() -> None:
    traces = [tracing.new_trace() for _ in range(50)]
    assert all(tracing.parse(t.header()) == t for t in traces)
    assert len({t.trace_id for t in traces}) == 50
    span = tracing.new_span(TRACE)
    assert span.trace_id == TRACE and tracing.parse(span.header()) == span


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """The root handler's output (JSON) while the test runs."""
    root = logging.getLogger()
    before, level = root.handlers[:], root.level
    configure_logging("INFO", service="svc")
    out = io.StringIO()
    root.handlers[0].setStream(out)  # type: ignore[attr-defined]
    yield out
    root.handlers[:] = before
    root.setLevel(level)


def _lines(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_json_lines_carry_the_current_trace_id_only_inside_its_context(
    captured: io.StringIO,
) -> None:
    log = logging.getLogger("test.tracing")
    log.info("before")
    with tracing.trace_context(TRACE):
        log.info("inside")
        log.info("about another", extra={"trace_id": "1" * 32})
    log.info("after")
    lines = _lines(captured)
    assert [line.get("trace_id") for line in lines] == [None, TRACE, "1" * 32, None]
    assert lines[1]["service"] == "svc" and lines[1]["message"] == "inside"


def test_bind_and_unbind_nest() -> None:
    outer = tracing.bind(TRACE)
    inner = tracing.bind("2" * 32)
    assert tracing.current_trace_id() == "2" * 32
    tracing.unbind(inner)
    assert tracing.current_trace_id() == TRACE
    tracing.unbind(outer)
    assert tracing.current_trace_id() is None


def test_text_format_is_one_readable_line_with_the_trace() -> None:
    root = logging.getLogger()
    before, level = root.handlers[:], root.level
    try:
        configure_logging("INFO", service="svc", fmt="text")
        out = io.StringIO()
        root.handlers[0].setStream(out)  # type: ignore[attr-defined]
        log = logging.getLogger("test.text")
        log.info("plain")
        with tracing.trace_context(TRACE):
            log.warning("traced %s", "line")
    finally:
        root.handlers[:] = before
        root.setLevel(level)
    plain, traced = out.getvalue().splitlines()
    assert plain.endswith(" INFO svc test.text plain") and "trace" not in plain
    assert traced.endswith(f" WARNING svc test.text [trace {TRACE}] traced line")
    with pytest.raises(json.JSONDecodeError):
        json.loads(traced)
