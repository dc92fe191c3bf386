"""Redis connection from settings: timeouts bounded so no request hangs on a dead server."""

from __future__ import annotations

import redis


def connect(url: str, *, socket_timeout: float = 2.0, max_connections: int = 64) -> redis.Redis:
    """A client with a bounded pool; callers own it and close it."""
    return redis.Redis.from_url(
        url,
        socket_timeout=socket_timeout,
        socket_connect_timeout=socket_timeout,
        health_check_interval=30,
        max_connections=max_connections,
        decode_responses=True,
    )


RETRYABLE_ERRORS: tuple[type[Exception], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.BusyLoadingError,
    redis.exceptions.TryAgainError,
    redis.exceptions.ClusterDownError,
    redis.ReadOnlyError,
)
"""Errors that mean "Redis is away for now": retry later, never skip the work."""
