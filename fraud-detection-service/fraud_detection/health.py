"""``GET /health``: Redis, Kafka and the consumer loop of this worker.

503 when Redis or the broker is unreachable, or the loop is dead, failing (its batch
keeps failing, e.g. Redis away) or has not polled for ``consumer_stall_seconds``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, current_app

from fraud_common.background import BackgroundThread
from fraud_common.health import HealthCheck
from fraud_common.http_errors import json_response
from fraud_common.kafka.consumer_loop import LoopStatus

EXTENSION = "fraud_detection.health"

blueprint = Blueprint("health", __name__)


def loop_report(
    thread: BackgroundThread, status: LoopStatus, stall_seconds: float
) -> Callable[[], dict[str, Any]]:
    def report() -> dict[str, Any]:
        return {"healthy": thread.alive and status.healthy(stall_seconds), **status.as_dict()}

    return report


@blueprint.get("/health")
def health() -> Response:
    check: HealthCheck = current_app.extensions[EXTENSION]
    body, status = check.report()
    return json_response(body, status)
