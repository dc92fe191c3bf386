"""The Prometheus series of every service, defined once, and ``GET /metrics``.

The metric objects live at module level (the prometheus_client way): an app factory
called twice in one process registers nothing twice, it only labels and observes.

Under gunicorn each worker is a process of its own, so ``PROMETHEUS_MULTIPROC_DIR``
names a directory where every worker keeps its values in files (prometheus_client's
multiprocess mode, chosen when prometheus_client is imported: the variable must be in
the environment from the start, as compose and the local stack set it). ``/metrics``
then sums the files of all workers with `MultiProcessCollector`. The directory is
emptied when the gunicorn master starts (`prepare_multiprocess_dir`, run by the
``on_starting`` hook) and a worker's live gauges are dropped when it dies
(`mark_process_dead`). Without the variable (tests, ``flask run``) the default
registry of the process is served.
"""

from __future__ import annotations

import os
import shutil
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
UNMATCHED_ROUTE = "unmatched"
"""The route label of a request no URL rule matched (a 404): never the raw path, which
would make one series per scanned URL."""

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

HTTP_REQUESTS = Counter(
    "fraud_http_requests",
    "HTTP requests answered, by service, route template and status code.",
    ["service", "route", "status"],
)
HTTP_REQUEST_DURATION = Histogram(
    "fraud_http_request_duration_seconds",
    "Time to answer an HTTP request (to the first byte of a streamed response).",
    ["service", "route"],
    buckets=_LATENCY_BUCKETS,
)
TRANSACTIONS_ACCEPTED = Counter(
    "fraud_transactions_accepted",
    "Transactions accepted (acknowledged by the broker) by the transaction-service.",
)
TRANSACTIONS_EVALUATED = Counter(
    "fraud_transactions_evaluated",
    "Transactions decided by the detector, first decisions only, by decision.",
    ["decision"],
)
for _decision in ("approve", "review", "decline", "error"):
    TRANSACTIONS_EVALUATED.labels(_decision)  # present at 0 from the start: rate() works
RULE_HITS = Counter(
    "fraud_rule_hits",
    "Rules that fired on first decisions, by rule id and mode (active or shadow).",
    ["rule", "mode"],
)
EVALUATION_DURATION = Histogram(
    "fraud_evaluation_duration_seconds",
    "Time the detector spends on one consumed batch: state, rules, decisions and the "
    "alerts acknowledged by the broker.",
    buckets=_LATENCY_BUCKETS,
)
DECISION_LATENCY = Histogram(
    "fraud_decision_latency_seconds",
    "From a transaction's acceptance (receivedAt) to its first decision.",
    buckets=_LATENCY_BUCKETS,
)
CONSUMER_LAG = Gauge(
    "fraud_consumer_lag",
    "Messages behind the partition's high watermark, from the consumer's own position.",
    ["group", "topic", "partition"],
    # Each partition has one owner in a group: the largest value among live workers is
    # that owner's (a worker that lost the partition sets it to 0 first). livemax also
    # drops a dead worker's values instead of keeping them forever, and needs no pid label.
    multiprocess_mode="livemax",
)
CONSUMER_LAST_POLL = Gauge(
    "fraud_consumer_last_poll_timestamp_seconds",
    "When the consumer loop last polled (Unix time); it stops moving while the loop "
    "retries a batch (a dependency away) or is stuck.",
    ["group"],
    multiprocess_mode="livemin",  # the stalest live consumer of the group
)
DEAD_LETTERS = Counter(
    "fraud_dead_letters",
    "Messages set aside by a consumer loop, by the dead-letter topic they went to.",
    ["topic"],
)
ALERTS_STORED = Counter(
    "fraud_alerts_stored",
    "Alerts stored by the alert-service for the first time, by alert type.",
    ["alert_type"],
)
NOTIFICATIONS = Counter(
    "fraud_notifications",
    "Notification attempts settled, by channel and result (delivered, failed: retried "
    "later, dead_lettered: given up, suppressed: within the cooldown).",
    ["channel", "result"],
)

CASES_OPENED = Counter(
    "fraud_cases_opened",
    "Cases opened by the alert-service (a user's first alert with no open case).",
)
CASES_CLOSED = Counter(
    "fraud_cases_closed",
    "Cases closed by an analyst, by verdict.",
    ["verdict"],
)
for _verdict in ("confirmed_fraud", "false_positive", "legitimate"):
    CASES_CLOSED.labels(_verdict)


OPENAPI_PATH_ITEM: dict[str, Any] = {
    "get": {
        "operationId": "metrics",
        "summary": "Prometheus metrics (text exposition format); no API key",
        "responses": {
            "200": {
                "description": "every series of the service, summed over its workers",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }
        },
    }
}
"""``/metrics`` as every service's OpenAPI document describes it."""


def multiprocess_dir() -> Path | None:
    value = os.environ.get(MULTIPROC_ENV)
    return Path(value) if value else None


def prepare_multiprocess_dir(path: Path) -> None:
    """Create ``path`` or empty it: files of an earlier run would be summed with this
    run's (a worker reusing an old pid would even continue its counters)."""
    if path.is_dir():
        for entry in path.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    path.mkdir(parents=True, exist_ok=True)


def mark_process_dead(pid: int) -> None:
    """Forget the live gauges of a worker that exited (counters and histograms stay:
    they count what that worker did)."""
    if multiprocess_dir() is not None:
        multiprocess.mark_process_dead(pid)


def _sweep_dead_workers(path: Path) -> None:
    """Drop the live gauges of workers that are gone without the master noticing (a
    service whose gunicorn config lacks ``child_exit``, a worker killed with its master)."""
    for file in path.glob("gauge_live*_*.db"):
        pid_text = file.stem.rsplit("_", 1)[-1]
        if not pid_text.isdigit():
            continue
        try:
            os.kill(int(pid_text), 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(int(pid_text), str(path))
        except PermissionError:
            pass  # alive, another user's


def exposition() -> tuple[bytes, str]:
    """The text format of every series, summed over the workers in multiprocess mode."""
    path = multiprocess_dir()
    if path is None:
        return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
    _sweep_dead_workers(path)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, str(path))
    return generate_latest(registry), CONTENT_TYPE_LATEST


@lru_cache(maxsize=4096)
def _http_children(service: str, route: str, status: int) -> tuple[Counter, Histogram]:
    """Labelled children, cached: ``labels()`` takes a lock and builds a tuple each call.
    Bounded: routes are templates and statuses few."""
    return (
        HTTP_REQUESTS.labels(service, route, str(status)),
        HTTP_REQUEST_DURATION.labels(service, route),
    )


def install_metrics(app: Flask, *, service: str) -> None:
    """``GET /metrics`` (no auth) and the HTTP series of every request ``app`` answers."""

    @app.before_request
    def _start_timer() -> None:
        g.metrics_started = time.perf_counter()

    @app.after_request
    def _observe(response: Response) -> Response:
        started = g.pop("metrics_started", None)
        if started is not None:
            rule = request.url_rule
            route = rule.rule if rule is not None else UNMATCHED_ROUTE
            requests, duration = _http_children(service, route, response.status_code)
            requests.inc()
            duration.observe(time.perf_counter() - started)
        return response

    def metrics() -> Response:
        body, content_type = exposition()
        return Response(body, content_type=content_type)

    app.add_url_rule("/metrics", "metrics", metrics, methods=["GET"])
