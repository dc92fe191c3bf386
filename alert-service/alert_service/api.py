"""``GET /api/v1/alerts`` (newest first) and ``GET /api/v1/alerts/<alertId>``.

Every data route of the alert-service (these, the stream and the stats) runs
`require_api_key` first: with ``API_KEYS`` set, no valid ``X-API-Key`` is a 401. The
dashboard page, ``/health`` and ``/metrics`` stay open.
"""

from __future__ import annotations

import re

from flask import Blueprint, Response, current_app, request

from alert_service.store import AlertStore
from fraud_common.api_keys import HEADER as API_KEY_HEADER
from fraud_common.api_keys import ApiKeys
from fraud_common.http_errors import ApiError, field_error, json_response
from fraud_common.schemas import USER_ID_PATTERN

STORE_EXTENSION = "alert_service.store"
API_KEYS_EXTENSION = "alert_service.api_keys"
DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
_USER_ID = re.compile(USER_ID_PATTERN)

blueprint = Blueprint("alerts", __name__, url_prefix="/api/v1/alerts")


def _store() -> AlertStore:
    store: AlertStore = current_app.extensions[STORE_EXTENSION]
    return store


def require_api_key() -> None:
    """401 unless the request carries a valid ``X-API-Key`` (open when no keys are set).
    An app without the extension refuses every request rather than serving it open."""
    api_keys: ApiKeys | None = current_app.extensions.get(API_KEYS_EXTENSION)
    if api_keys is None:
        raise ApiError(500, "internal_error", "the alert-service's API keys are not configured")
    api_keys.require(request.headers.get(API_KEY_HEADER))


blueprint.before_request(require_api_key)


def user_id_param() -> str | None:
    """The optional ``userId`` query parameter, checked like the transaction's field."""
    value = request.args.get("userId")
    if value is None or value == "":
        return None
    if not _USER_ID.match(value):
        raise field_error("userId", "must be 1-64 characters of A-Z a-z 0-9 _ . : @ -")
    return value


def limit_param() -> int:
    raw = request.args.get("limit")
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    message = f"must be an integer between 1 and {MAX_LIMIT}"
    if not raw.isascii() or not raw.isdigit() or len(raw) > 6:
        raise field_error("limit", message)
    value = int(raw)
    if not 1 <= value <= MAX_LIMIT:
        raise field_error("limit", message)
    return value


@blueprint.get("")
def list_alerts() -> Response:
    user_id = user_id_param()
    limit = limit_param()
    alerts = _store().recent(user_id=user_id, limit=limit)
    return json_response({"alerts": alerts, "count": len(alerts)})


@blueprint.get("/<alertId>")
def get_alert(alertId: str) -> Response:  # the path parameter is named as in the document
    alert = _store().get(alertId) if len(alertId) <= 128 else None
    if alert is None:
        raise ApiError(404, "not_found", f"no alert with id {alertId[:128]!r}")
    return json_response(alert)
