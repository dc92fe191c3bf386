"""One log line per event, on stderr, for every service: JSON by default (containers,
log shippers), ``LOG_FORMAT=text`` for people. Every line made while a transaction is
being handled carries its ``trace_id`` (`fraud_common.tracing.TraceIdFilter`)."""

from __future__ import annotations

import logging
import sys
from typing import Literal

from pythonjsonlogger.json import JsonFormatter

from fraud_common.tracing import TraceIdFilter

LogFormat = Literal["json", "text"]


class TextFormatter(logging.Formatter):
    """``2026-12-01 19:57:05,123 WARNING fraud_detection.alerts [trace 4bf9...] message``."""

    def __init__(self, service: str = "") -> None:
        prefix = f"{service} " if service else ""
        super().__init__(f"%(asctime)s %(levelname)s {prefix}%(name)s%(trace)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        trace_id = getattr(record, "trace_id", None)
        record.trace = f" [trace {trace_id}]" if trace_id else ""
        return super().format(record)


def configure_logging(level: str = "INFO", service: str = "", fmt: LogFormat = "json") -> None:
    """Replace the root handlers with one JSON (or text) handler on stderr; idempotent."""
    handler = logging.StreamHandler(sys.stderr)
    formatter: logging.Formatter
    if fmt == "text":
        formatter = TextFormatter(service)
    else:
        formatter = JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            static_fields={"service": service} if service else None,
        )
    handler.setFormatter(formatter)
    handler.addFilter(TraceIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
