"""``GET /health`` of the archive-service: PostgreSQL, the broker and the consumer loop."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, Response, current_app

from fraud_common.http_errors import json_response
from fraud_common.kafka.producer import AckingProducer

EXTENSION = "archive_service.health"


class ArchiveHealth:
    """``report()`` -> (body, 200|503), cached for a second so that a busy health
    endpoint never turns into load on PostgreSQL or the broker."""

    def __init__(
        self,
        *,
        database_up: Callable[[], bool],
        producer: AckingProducer,
        loop: Callable[[], dict[str, Any]],
        cache_seconds: float = 1.0,
    ) -> None:
        self._database_up = database_up
        self._producer = producer
        self._loop = loop
        self._cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._cached: tuple[float, dict[str, Any], int] | None = None

    def report(self) -> tuple[dict[str, Any], int]:
        with self._lock:
            now = time.monotonic()
            if self._cached is None or now - self._cached[0] >= self._cache_seconds:
                self._cached = (now, *self._check())
            return self._cached[1], self._cached[2]

    def _check(self) -> tuple[dict[str, Any], int]:
        postgres = "connected" if self._database_up() else "disconnected"
        kafka = "connected" if self._producer.cluster_reachable(1.5) else "disconnected"
        loop = self._loop()
        ok = postgres == "connected" and kafka == "connected" and bool(loop.get("healthy"))
        body = {
            "status": "healthy" if ok else "unhealthy",
            "postgres": postgres,
            "kafka": kafka,
            "consumer": loop,
        }
        return body, 200 if ok else 503


def install_health(app: Flask, check: ArchiveHealth) -> None:
    app.extensions[EXTENSION] = check
    blueprint = Blueprint("health", __name__)

    @blueprint.get("/health")
    def health() -> Response:
        body, status = current_app.extensions[EXTENSION].report()
        return json_response(body, status, {"Cache-Control": "no-store"})

    app.register_blueprint(blueprint)
