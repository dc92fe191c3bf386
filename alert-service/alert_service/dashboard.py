"""The live dashboard (``GET /``) and the per-second counts it charts (``GET /api/v1/stats``).

The page is static HTML, CSS and JavaScript from ``static/`` (no build step, nothing
fetched from another origin): it reads the stored alerts from ``/api/v1/alerts``,
follows ``/api/v1/alerts/stream`` (``fetch`` with the ``X-API-Key`` header, the body
read as a stream) and polls ``/api/v1/stats`` for its chart. The page itself holds no
data and stays open; with ``API_KEYS`` set it asks for a key once per tab. The app
factory registers `blueprint` and puts its Redis client (decoded responses) in
``app.extensions["alert_service.redis"]``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis
from flask import Blueprint, Response, current_app, request, send_from_directory

from alert_service.api import require_api_key
from fraud_common import keys
from fraud_common.http_errors import error_response, field_error, json_response, unavailable
from fraud_common.redis_client import RETRYABLE_ERRORS

log = logging.getLogger(__name__)

REDIS_EXTENSION = "alert_service.redis"
MAX_STATS_SECONDS = 3600
DEFAULT_STATS_SECONDS = 300
_SECONDS_RULE = f"must be an integer from 1 to {MAX_STATS_SECONDS}"

# The page loads only what this blueprint serves: the policy makes "no CDN, no network"
# a property the browser enforces, not only a habit of whoever edits the page.
_PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)

blueprint = Blueprint(
    "dashboard", __name__, static_folder="static", static_url_path="/dashboard/static"
)


def _redis() -> redis.Redis:
    client: redis.Redis = current_app.extensions[REDIS_EXTENSION]
    return client


def _counts(values: list[Any]) -> list[int]:
    return [int(value) if value is not None else 0 for value in values]


@blueprint.get("/")
def page() -> Response:
    response = send_from_directory(blueprint.static_folder or "static", "index.html")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["Content-Security-Policy"] = _PAGE_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@blueprint.get("/api/v1/stats")
def stats() -> Response:
    """Transactions evaluated and alerts stored per second, for the ``seconds`` seconds
    ending with the current one (the last entry is still filling up)."""
    require_api_key()
    raw = request.args.get("seconds", str(DEFAULT_STATS_SECONDS))
    try:
        seconds = int(raw)
    except ValueError:
        return error_response(field_error("seconds", _SECONDS_RULE))
    if not 1 <= seconds <= MAX_STATS_SECONDS:
        return error_response(field_error("seconds", _SECONDS_RULE))
    now = int(time.time())
    epochs = list(range(now - seconds + 1, now + 1))
    # One GET per key in one pipeline, not MGET: the keys of different seconds are in
    # different slots of a Redis Cluster (the cluster pipeline sends each node its part).
    pipe = _redis().pipeline(transaction=False)
    for second in epochs:
        pipe.get(keys.stats_transactions(second))
    for second in epochs:
        pipe.get(keys.stats_alerts(second))
    try:
        counts = pipe.execute()
    except RETRYABLE_ERRORS:
        log.warning("stats unavailable: Redis unreachable", exc_info=True)
        return error_response(unavailable("Redis is unreachable; try again shortly"))
    return json_response(
        {
            "seconds": epochs,
            "transactions": _counts(counts[: len(epochs)]),
            "alerts": _counts(counts[len(epochs) :]),
        },
        headers={"Cache-Control": "no-store"},
    )
