"""``GET /api/v1/health``: Redis and Kafka reachable, or 503 naming what is down."""

from __future__ import annotations

from flask import Blueprint, Response

from fraud_common.http_errors import json_response
from transaction_service.context import current

bp = Blueprint("health", __name__, url_prefix="/api/v1")


@bp.get("/health")
def health() -> Response:
    body, status = current().health.report()
    return json_response(body, status, {"Cache-Control": "no-store"})
