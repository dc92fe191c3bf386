"""``GET /api/v1/alerts/stream``: stored alerts as server-sent events, live.

Every stored alert is an entry of `keys.ALERTS_STREAM` (in store order). A subscriber
gets its own Redis connection and reads the stream after its start position with
``XREAD BLOCK``, so no subscriber waits for another. The start position is the stream's
current end, or, with ``Last-Event-ID`` (header, or ``lastEventId`` query parameter for
clients that cannot set headers), the entry of that alert: the replay of what was missed
and the live part are one read of one ordered stream, so nothing is skipped or sent twice.

Each blocking read is bounded (at most ``MAX_BLOCK_SECONDS``) so a subscriber notices a
shutdown (the event in ``app.extensions[SHUTDOWN_EXTENSION]``, set by gunicorn.conf.py on
SIGTERM) or the heartbeat deadline in time. A heartbeat comment goes out whenever nothing
was sent for ``heartbeat_seconds``. If Redis goes away the stream ends with a comment and
the client reconnects with its Last-Event-ID (EventSource does so by itself).

Subscribers are capped per process (``SSE_MAX_SUBSCRIBERS``, a semaphore): each one
holds a gunicorn thread and a Redis connection for as long as it stays, so beyond the
cap a new one gets 503 with ``Retry-After`` instead of taking the threads the API and
``/health`` need (gunicorn.conf.py keeps the pool larger than the cap). Their Redis
connections come from the feed's own bounded pool, never from the API's client.
On a Redis Cluster (``REDIS_CLUSTER=true``) that pool connects to the primary that holds
the stream's slot (every read of a subscriber is on that one key), found with a cluster
client; when the slot moves (failover, resharding), the next subscription finds the new
primary and open ones end on the error and reconnect.
Under gunicorn the subscriber's socket is checked after every bounded read, so a client
that left frees its slot within about a second rather than at the next heartbeat.
The stream needs the ``X-API-Key`` header like the other data routes (the dashboard reads
it with ``fetch``; a key in the URL would end up in logs and browser history).
"""

from __future__ import annotations

import logging
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import redis
from flask import Blueprint, Response, current_app, request

from alert_service.api import require_api_key, user_id_param
from alert_service.store import AlertStore
from fraud_common import keys
from fraud_common.http_errors import ApiError, field_error
from fraud_common.redis_client import RETRYABLE_ERRORS

log = logging.getLogger(__name__)

FEED_EXTENSION = "alert_service.feed"
SHUTDOWN_EXTENSION = "alert_service.shutdown"
MAX_BLOCK_SECONDS = 1.0
READ_COUNT = 500
STREAM_CLIENT_NAME = "alert-service:stream"
FULL_RETRY_AFTER_SECONDS = 5

blueprint = Blueprint("stream", __name__)
blueprint.before_request(require_api_key)


@dataclass(frozen=True)
class FeedConfig:
    redis_url: str
    socket_timeout: float = 2.0
    cluster: bool = False
    heartbeat_seconds: float = 15.0
    retry_ms: int = 2000
    max_subscribers: int = 50


class AlertFeed:
    """Opens subscriptions: one Redis connection and one start position each."""

    def __init__(self, config: FeedConfig, store: AlertStore, shutdown: threading.Event) -> None:
        self.config = config
        self._store = store
        self._shutdown = shutdown
        self._lock = threading.Lock()
        self._open = 0
        self._slots = threading.BoundedSemaphore(config.max_subscribers)
        self._locator: redis.RedisCluster | None = None  # cluster only, made on first use
        self._pool_node: tuple[str, int] | None = None
        self._pool = self._new_pool() if not config.cluster else None

    def _new_pool(self, node: tuple[str, int] | None = None) -> redis.BlockingConnectionPool:
        """One connection per subscriber, never more than the cap: the semaphore is taken
        first, so the pool's wait (timeout) is only a guard. ``node``: connect there (a
        cluster primary) with the URL's credentials and options."""
        block = min(self.config.heartbeat_seconds, MAX_BLOCK_SECONDS)
        pool = redis.BlockingConnectionPool.from_url(
            self.config.redis_url,
            max_connections=self.config.max_subscribers,
            timeout=self.config.socket_timeout,
            decode_responses=True,
            socket_timeout=block + self.config.socket_timeout,
            socket_connect_timeout=self.config.socket_timeout,
            client_name=STREAM_CLIENT_NAME,  # visible in CLIENT LIST
        )
        if node is not None:
            # from_url lets the URL's host and port win over keyword arguments: set after.
            pool.connection_kwargs.update(host=node[0], port=node[1])
        return pool

    def _stream_pool(self) -> redis.BlockingConnectionPool:
        """The pool for the stream's Redis: on a cluster, the primary of its slot now."""
        with self._lock:
            if not self.config.cluster:
                assert self._pool is not None  # built in __init__ without cluster
                return self._pool
            if self._locator is None:
                try:
                    self._locator = redis.RedisCluster.from_url(
                        self.config.redis_url,
                        socket_timeout=self.config.socket_timeout,
                        socket_connect_timeout=self.config.socket_timeout,
                        decode_responses=True,
                    )
                except redis.exceptions.RedisClusterException as exc:  # not a RedisError
                    raise redis.ConnectionError(str(exc)) from exc
            primary = self._locator.get_node_from_key(keys.ALERTS_STREAM)
            node = (str(primary.host), int(primary.port))
            if self._pool is None or node != self._pool_node:
                old, self._pool, self._pool_node = self._pool, self._new_pool(node), node
                if old is not None:
                    old.disconnect(inuse_connections=False)
            return self._pool

    @property
    def open_subscriptions(self) -> int:
        return self._open

    def _closed(self) -> None:
        with self._lock:
            self._open -= 1
        self._slots.release()

    def close(self) -> None:
        """Drop the pool's idle connections (after the streams ended)."""
        if self._pool is not None:
            self._pool.disconnect()
        if self._locator is not None:
            self._locator.close()

    def subscribe(
        self,
        *,
        user_id: str | None,
        last_event_id: str | None,
        peer_gone: Callable[[], bool] = lambda: False,
    ) -> Subscription:
        """Raises `ApiError` 503 beyond the cap, and `redis.RedisError` when Redis cannot
        be reached (the view answers 503)."""
        block = min(self.config.heartbeat_seconds, MAX_BLOCK_SECONDS)
        if not self._slots.acquire(blocking=False):
            raise ApiError(
                503,
                "service_unavailable",
                f"too many live streams ({self.config.max_subscribers} per process); retry later",
                headers={"Retry-After": str(FULL_RETRY_AFTER_SECONDS)},
            )
        try:
            # single_connection_client: the subscriber keeps one pooled connection until
            # close() gives it back.
            pool = self._stream_pool()
            client = redis.Redis(connection_pool=pool, single_connection_client=True)
        except BaseException:
            self._slots.release()
            raise
        try:
            start, notes = self._start_position(client, last_event_id)
        except BaseException:
            client.close()
            self._slots.release()
            raise
        with self._lock:
            self._open += 1
        return Subscription(
            client,
            on_close=self._closed,
            start_id=start,
            notes=notes,
            user_id=user_id,
            config=self.config,
            block_seconds=block,
            shutdown=self._shutdown,
            peer_gone=peer_gone,
        )

    def _start_position(
        self, client: redis.Redis, last_event_id: str | None
    ) -> tuple[str, list[str]]:
        if last_event_id:
            stream_id = self._store.stream_id_of(last_event_id)
            if stream_id:
                notes = [f"replaying alerts stored after {last_event_id}"]
                oldest = client.xrange(keys.ALERTS_STREAM, count=1)
                if oldest and _id_tuple(str(oldest[0][0])) > _id_tuple(stream_id):
                    notes.append("older alerts were trimmed from the stream: some may be missing")
                return stream_id, notes
            notes = [f"unknown Last-Event-ID {last_event_id}: starting live"]
        else:
            notes = []
        newest = client.xrevrange(keys.ALERTS_STREAM, count=1)
        start = str(newest[0][0]) if newest else "0-0"
        return start, [*notes, "live"]


class Subscription:
    """One subscriber's events; `close` releases its Redis connection."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        on_close: Callable[[], None],
        start_id: str,
        notes: list[str],
        user_id: str | None,
        config: FeedConfig,
        block_seconds: float,
        shutdown: threading.Event,
        peer_gone: Callable[[], bool],
    ) -> None:
        self._client = client
        self._on_close: Callable[[], None] | None = on_close
        self._last_id = start_id
        self._notes = notes
        self._user_id = user_id
        self._config = config
        self._block_ms = max(1, int(block_seconds * 1000))
        self._shutdown = shutdown
        self._peer_gone = peer_gone

    def close(self) -> None:
        """Release the connection; idempotent (the server calls it when the response ends).
        The connection is closed, not kept idle: an idle pool of up to the cap's size
        would hold Redis connections for subscribers long gone."""
        connection = self._client.connection
        if connection is not None:
            connection.disconnect()
        self._client.close()
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            on_close()

    def events(self) -> Iterator[str]:
        yield f"retry: {self._config.retry_ms}\n" + "".join(f": {n}\n" for n in self._notes) + "\n"
        last_write = time.monotonic()
        while not self._shutdown.is_set():
            try:
                reply = self._client.xread(
                    {keys.ALERTS_STREAM: self._last_id}, count=READ_COUNT, block=self._block_ms
                )
            except RETRYABLE_ERRORS:
                log.warning("alert stream read failed; ending the stream", exc_info=True)
                yield ": alert store unavailable, reconnect to resume\n\n"
                return
            chunk = "".join(self._format(reply))
            now = time.monotonic()
            if chunk:
                yield chunk
                last_write = now
            elif now - last_write >= self._config.heartbeat_seconds:
                yield ": heartbeat\n\n"
                last_write = now
            if self._peer_gone():
                return
        yield ": server shutting down, reconnect to resume\n\n"

    def _format(self, reply: Any) -> Iterator[str]:
        streams = reply.items() if isinstance(reply, dict) else (reply or [])
        for _name, entries in streams:
            for entry_id, fields in entries:
                self._last_id = entry_id
                alert_id, alert = fields.get("alertId"), fields.get("alert")
                if not alert_id or not alert:
                    continue  # not written by the store
                if self._user_id is not None and fields.get("userId") != self._user_id:
                    continue
                yield f"event: alert\nid: {alert_id}\ndata: {alert}\n\n"


def hung_up(sock: socket.socket) -> bool:
    """True when the peer closed ``sock`` (readable, and a peek reads end of file).
    Unknown (a TLS socket cannot peek) counts as still there."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
    except (ConnectionError, TimeoutError):
        return True
    except (OSError, ValueError):
        return False


def _peer_check() -> Callable[[], bool]:
    sock = request.environ.get("gunicorn.socket")
    if not isinstance(sock, socket.socket):
        return lambda: False  # another server: the next write notices a gone client
    return lambda: hung_up(sock)


def _id_tuple(stream_id: str) -> tuple[int, int]:
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)


def _last_event_id_param() -> str | None:
    value = request.headers.get("Last-Event-ID") or request.args.get("lastEventId")
    if not value:
        return None
    value = value.strip()
    if len(value) > 128 or not value.isprintable():
        raise field_error("Last-Event-ID", "must be an alert id (at most 128 characters)")
    return value


@blueprint.get("/api/v1/alerts/stream")
def stream_alerts() -> Response:
    user_id = user_id_param()
    last_event_id = _last_event_id_param()
    feed: AlertFeed = current_app.extensions[FEED_EXTENSION]
    subscription = feed.subscribe(
        user_id=user_id, last_event_id=last_event_id, peer_gone=_peer_check()
    )
    response = Response(subscription.events(), mimetype="text/event-stream")
    response.call_on_close(subscription.close)
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"
    return response
