"""Health of a service: its dependencies and its background loops, in one JSON answer."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import redis
from flask import Blueprint, Flask, Response, current_app

from fraud_common.background import BackgroundThread
from fraud_common.http_errors import json_response
from fraud_common.kafka.consumer_loop import LoopStatus
from fraud_common.kafka.producer import AckingProducer
from fraud_common.redis_client import RETRYABLE_ERRORS

EXTENSION = "fraud_common.health"


class HealthCheck:
    """``report()`` -> (body, 200|503). Results are cached briefly so that a busy
    health endpoint never turns into load on Redis, PostgreSQL or the broker.

    Each dependency given is checked: Redis (``redis_client``), PostgreSQL
    (``database_up``, reported as ``postgres``) and always the broker."""

    def __init__(
        self,
        *,
        producer: AckingProducer,
        redis_client: redis.Redis | None = None,
        database_up: Callable[[], bool] | None = None,
        loops: Callable[[], dict[str, Any]] | None = None,
        cache_seconds: float = 1.0,
    ) -> None:
        self._redis = redis_client
        self._database_up = database_up
        self._producer = producer
        self._loops = loops
        self._cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._cached: tuple[float, dict[str, Any], int] | None = None

    def report(self) -> tuple[dict[str, Any], int]:
        with self._lock:
            now = time.monotonic()
            if self._cached and now - self._cached[0] < self._cache_seconds:
                return self._cached[1], self._cached[2]
            body, status = self._check()
            self._cached = (now, body, status)
            return body, status

    def _check(self) -> tuple[dict[str, Any], int]:
        body: dict[str, Any] = {}
        if self._redis is not None:
            body["redis"] = _redis_state(self._redis)
        if self._database_up is not None:
            body["postgres"] = "connected" if self._database_up() else "disconnected"
        body["kafka"] = "connected" if self._producer.cluster_reachable(1.5) else "disconnected"
        ok = all(state == "connected" for state in body.values())
        if self._loops is not None:
            loops = self._loops()
            body["consumer"] = loops
            ok = ok and bool(loops.get("healthy"))
        body = {"status": "healthy" if ok else "unhealthy", **body}
        return body, 200 if ok else 503


def _redis_state(client: redis.Redis) -> str:
    try:
        client.ping()
    except RETRYABLE_ERRORS:
        return "disconnected"
    except redis.RedisError as exc:
        return f"error: {type(exc).__name__}"
    return "connected"


def loop_report(
    thread: BackgroundThread, status: LoopStatus, stall_seconds: float
) -> Callable[[], dict[str, Any]]:
    """The consumer part of a health report: unwell when the loop's thread died, when it
    is failing (Redis or Kafka away, a batch being retried) or stopped polling for
    ``stall_seconds``."""

    def report() -> dict[str, Any]:
        healthy = thread.alive and status.healthy(stall_seconds)
        return {"healthy": healthy, "threadAlive": thread.alive, **status.as_dict()}

    return report


def install_health(app: Flask, check: HealthCheck, *, url_prefix: str = "") -> None:
    """Serve ``GET <url_prefix>/health`` from ``check`` on ``app``."""
    app.extensions[EXTENSION] = check
    blueprint = Blueprint("health", __name__, url_prefix=url_prefix or None)

    @blueprint.get("/health")
    def health() -> Response:
        body, status = current_app.extensions[EXTENSION].report()
        return json_response(body, status, {"Cache-Control": "no-store"})

    app.register_blueprint(blueprint)
