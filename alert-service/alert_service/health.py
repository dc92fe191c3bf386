"""``GET /health``: Redis, Kafka and the consumer loop, 503 when any of them is not well.

The loop counts as unwell when its thread died, when it is failing (Redis or Kafka away,
batch being retried) or when it stopped polling for ``stall_seconds``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, current_app

from fraud_common.background import BackgroundThread
from fraud_common.health import HealthCheck
from fraud_common.http_errors import json_response
from fraud_common.kafka.consumer_loop import ConsumerLoop

HEALTH_EXTENSION = "alert_service.health"

blueprint = Blueprint("health", __name__)


def loop_report(
    thread: BackgroundThread, loop: ConsumerLoop[Any], stall_seconds: float
) -> Callable[[], dict[str, Any]]:
    def report() -> dict[str, Any]:
        healthy = thread.alive and loop.status.healthy(stall_seconds)
        return {"healthy": healthy, "threadAlive": thread.alive, **loop.status.as_dict()}

    return report


@blueprint.get("/health")
def health() -> Response:
    check: HealthCheck = current_app.extensions[HEALTH_EXTENSION]
    body, status = check.report()
    return json_response(body, status, {"Cache-Control": "no-store"})
