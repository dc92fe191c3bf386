"""Redis durability: how far a write must have gone before the platform acts on it.

Redis answers a write once it is in memory and in the AOF file (``appendonly yes``), not
once that file is on disk. A SIGKILL of redis-server loses nothing (the kernel still holds
the file); a host crash or power loss loses what was not fsynced yet: with ``appendfsync
everysec`` up to about a second of writes that were already acted on (records answered
with 201, window entries and decisions whose Kafka offsets are committed, stored alerts).
``REDIS_DURABILITY`` chooses:

``none`` (the default, for development)
    act as soon as Redis answers.
``waitaof``
    after the writes that matter, ``WAITAOF 1 0 <timeout>`` on the connection that made
    the last of them must report the local fsync before the operation goes on; otherwise
    it fails as "Redis unavailable" (`DurabilityNotConfirmed` is a ``redis.ConnectionError``):
    503 on ingest, the batch retried by the consumer loop. Confirming the last write
    confirms every write answered before it, whichever connection made it, because the
    AOF is one ordered file. Needs Redis >= 7.2 (or Valkey >= 8) with ``appendonly yes``;
    without either, every operation fails, and the start-up check says why.
``always``
    no command per operation: the server must run ``appendfsync always`` (it fsyncs
    before replying, once per event-loop turn for all its clients). Checked with ``CONFIG
    GET`` at start and again every `RECHECK_SECONDS`; a server found otherwise fails
    operations as ``waitaof`` would. A server that refuses CONFIG (managed offerings often
    rename it) cannot be checked: that is logged at WARNING, reported as ``unverified``
    and the server is trusted.

The trade-off. ``waitaof`` on a server with ``appendfsync everysec`` keeps Redis's write
throughput, but every confirmed operation waits for the next fsync: about 100 ms when
Redis is idle, up to a second under write load. ``appendfsync always`` makes every write
of every client wait for an fsync (grouped per event-loop turn), and then a confirmation
costs one round trip. The production compose file runs ``waitaof`` against a Redis with
``appendfsync always``: the fsync is done before the reply, and WAITAOF proves it was, so
a Redis restarted with AOF off makes the services refuse work instead of silently
losing the guarantee.

What it costs, the former ``tools/bench.py`` (1,500 single POSTs from 16 clients, 30
batches of 100) on this 2-core VM (ext4), Valkey 8.1, durability in the transaction-service
only, 2026-12-01; the runs vary by about 25 %, so only the everysec+waitaof line is a real
difference:

    REDIS_DURABILITY  appendfsync   single POST req/s   p50 / p99 ms   batch txn/s
    none              everysec      705 - 963           15-20 / 39-61  8,350 - 8,920
    waitaof           everysec      153                 101 / 213      9,140
    waitaof           always        876                 17 / 42        10,540
    always            always        993                 15 / 36        7,720

Use: ``durability = RedisDurability.from_settings(settings)``, once per process;
``durability.check(client)`` at start (logs and remembers the outcome);
``durability.execute(pipe)`` instead of ``pipe.execute()`` for the pipeline that makes the
last writes of an operation; ``durability.wait(client)`` after writes made otherwise (a
script, several calls). Not for a Redis Cluster yet: each primary has its own AOF there,
and a confirmation would be needed from every primary that took a write.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import redis
from redis.client import Pipeline

from fraud_common import keys
from fraud_common.redis_client import RETRYABLE_ERRORS
from fraud_common.settings import ServiceSettings

log = logging.getLogger(__name__)

Mode = Literal["none", "waitaof", "always"]
State = Literal["off", "confirmed", "unverified", "failing", "unknown"]

RECHECK_SECONDS = 30.0
"""How often ``always`` asks the server again whether it still fsyncs every write."""
FENCE_TTL_MS = 60_000


class DurabilityNotConfirmed(redis.ConnectionError):
    """Redis did not confirm that writes reached its disk: handled as "Redis is away"
    (a 503 on ingest, a batch retried), never as a bad record."""


@dataclass(frozen=True)
class DurabilityStatus:
    """What is known about the server's durability; ``healthy`` unless it is failing."""

    mode: Mode
    state: State
    detail: str = ""

    @property
    def healthy(self) -> bool:
        return self.state != "failing"

    def as_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "state": self.state,
            "detail": self.detail,
            "healthy": self.healthy,
        }


class RedisDurability:
    """Makes writes durable as ``REDIS_DURABILITY`` says; safe to share between threads."""

    def __init__(
        self,
        mode: Mode = "none",
        *,
        timeout_ms: int = 1500,
        recheck_seconds: float = RECHECK_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._mode: Mode = mode
        self._timeout_ms = timeout_ms
        self._recheck_seconds = recheck_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._status = DurabilityStatus(mode, "off" if mode == "none" else "unknown")
        self._checked_at: float | None = None

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> RedisDurability:
        """The WAITAOF timeout is three quarters of the socket timeout, so that Redis
        answers "not confirmed" before the client gives up on the connection."""
        return cls(
            settings.redis_durability,
            timeout_ms=max(1, int(settings.redis_socket_timeout * 750)),
        )

    @property
    def mode(self) -> Mode:
        return self._mode

    @property
    def enabled(self) -> bool:
        return self._mode != "none"

    def status(self) -> DurabilityStatus:
        """The last known status (from `check` or the last operation)."""
        return self._status

    def check(self, client: redis.Redis) -> DurabilityStatus:
        """Ask the server whether it gives what the mode needs; logs and remembers the
        answer. Never raises: an unreachable server is ``unknown`` until asked again."""
        if self._mode == "waitaof":
            status = self._check_waitaof(client)
        elif self._mode == "always":
            status = self._check_always(client)
        else:
            status = DurabilityStatus("none", "off", "writes count once Redis answers")
        self._checked_at = self._clock()
        self._set(status)
        return status

    def health(self, client: redis.Redis) -> dict[str, Any]:
        """The status for a health report (asks the server again when a check is due)."""
        if self._mode == "always" and self._check_due():
            self.check(client)
        return self._status.as_dict()

    def execute(self, pipe: Pipeline) -> list[Any]:
        """``pipe.execute()``, then durable as the mode says; returns the pipeline's own
        results. Raises what ``execute`` raises, or `DurabilityNotConfirmed`."""
        if self._mode == "none":
            return list(pipe.execute())
        if self._mode == "always":
            self._require_always(lambda: redis.Redis(connection_pool=pipe.connection_pool))
            return list(pipe.execute())
        pipe.execute_command("WAITAOF", 1, 0, self._timeout_ms)
        results = list(pipe.execute(raise_on_error=False))
        *own, confirmation = results
        for result in own:
            if isinstance(result, Exception):
                raise result
        self._confirm(confirmation)
        return own

    def wait(self, client: redis.Redis) -> None:
        """Make every write this process has had answered so far durable (in ``waitaof``
        mode: a fence write and WAITAOF on one connection). Raises a ``redis.RedisError``
        (`DurabilityNotConfirmed` when Redis answered but did not confirm)."""
        if self._mode == "none":
            return
        if self._mode == "always":
            self._require_always(lambda: client)
            return
        pipe = client.pipeline(transaction=False)
        pipe.set(keys.DURABILITY_FENCE, "1", px=FENCE_TTL_MS)
        self.execute(pipe)

    # -- waitaof ----------------------------------------------------------------------

    def _check_waitaof(self, client: redis.Redis) -> DurabilityStatus:
        try:
            # A connection that has written nothing is answered at once: [1, 0] with AOF on.
            reply = client.execute_command("WAITAOF", 1, 0, self._timeout_ms)
        except redis.ResponseError as exc:
            return DurabilityStatus("waitaof", "failing", _waitaof_problem(exc))
        except RETRYABLE_ERRORS as exc:
            return DurabilityStatus("waitaof", "unknown", f"Redis unreachable: {exc}")
        if _local_count(reply) < 1:
            return DurabilityStatus("waitaof", "failing", f"WAITAOF answered {reply!r}")
        return DurabilityStatus("waitaof", "confirmed", "WAITAOF confirms the local fsync")

    def _confirm(self, reply: Any) -> None:
        if isinstance(reply, redis.ResponseError):
            detail = _waitaof_problem(reply)
        elif isinstance(reply, Exception):
            raise reply
        elif _local_count(reply) < 1:
            detail = f"the local fsync was not confirmed within {self._timeout_ms} ms"
        else:
            if self._status.state != "confirmed":
                self._set(DurabilityStatus("waitaof", "confirmed", "WAITAOF confirms fsync"))
            return
        self._set(DurabilityStatus("waitaof", "failing", detail))
        raise DurabilityNotConfirmed(detail)

    # -- always -----------------------------------------------------------------------

    def _check_always(self, client: redis.Redis) -> DurabilityStatus:
        try:
            config = client.config_get("append*")
        except redis.ResponseError as exc:
            return DurabilityStatus(
                "always",
                "unverified",
                f"CONFIG GET is not allowed ({exc}): cannot check that the server runs "
                "appendonly yes and appendfsync always; trusting it",
            )
        except RETRYABLE_ERRORS as exc:
            return DurabilityStatus("always", "unknown", f"Redis unreachable: {exc}")
        appendonly, appendfsync = config.get("appendonly"), config.get("appendfsync")
        if appendonly != "yes" or appendfsync != "always":
            return DurabilityStatus(
                "always",
                "failing",
                f"the server runs appendonly {appendonly} and appendfsync {appendfsync}; "
                "REDIS_DURABILITY=always needs appendonly yes and appendfsync always",
            )
        return DurabilityStatus("always", "confirmed", "appendonly yes, appendfsync always")

    def _require_always(self, client: Callable[[], redis.Redis]) -> None:
        if self._check_due():
            self.check(client())
        status = self._status
        if status.state == "failing":
            raise DurabilityNotConfirmed(status.detail)

    def _check_due(self) -> bool:
        if self._status.state == "unknown":
            return True
        checked = self._checked_at
        return checked is None or self._clock() - checked >= self._recheck_seconds

    # -- status -----------------------------------------------------------------------

    def _set(self, status: DurabilityStatus) -> None:
        with self._lock:
            previous, self._status = self._status, status
        if (previous.state, previous.detail) == (status.state, status.detail):
            return
        extra = {"durability": status.mode, "state": status.state}
        if status.state == "failing":
            log.error("Redis durability not given: %s", status.detail, extra=extra)
        elif status.state == "unverified":
            log.warning("Redis durability unverified: %s", status.detail, extra=extra)
        elif status.state == "unknown":
            log.warning("Redis durability unknown: %s", status.detail, extra=extra)
        else:
            log.info("Redis durability %s: %s", status.mode, status.detail, extra=extra)


def _local_count(reply: Any) -> int:
    """``numlocal`` of a WAITAOF reply ``[numlocal, numreplicas]`` (0 when malformed)."""
    try:
        return int(reply[0])
    except (TypeError, ValueError, IndexError):
        return 0


def _waitaof_problem(exc: redis.ResponseError) -> str:
    text = str(exc)
    if "unknown command" in text.lower():
        return (
            f"the server has no WAITAOF ({text}); REDIS_DURABILITY=waitaof needs Redis >= 7.2 "
            "or Valkey >= 8"
        )
    return f"WAITAOF failed: {text}"
