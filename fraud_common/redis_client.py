"""Redis connection from settings: timeouts bounded so no request hangs on a dead server."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

import redis
from redis.cluster import ClusterPipeline
from redis.commands.core import Script
from redis.crc import key_slot
from redis.exceptions import NoScriptError
from redis.typing import ScriptTextT as ScriptT

T = TypeVar("T")


def connect(
    url: str,
    *,
    socket_timeout: float = 2.0,
    connect_timeout: float | None = None,
    max_connections: int = 64,
    cluster: bool = False,
) -> redis.Redis:
    """A client with a bounded pool; callers own it and close it. Connecting times out
    after ``connect_timeout`` (default: ``socket_timeout``).

    With ``cluster`` (``REDIS_CLUSTER=true``) it is a `redis.RedisCluster` found from the
    node ``url`` names (any node: the others are discovered), with the same timeouts and a
    pool of ``max_connections`` per node. It offers the commands the services use with the
    same signatures, so it is typed as `redis.Redis` and callers do not change; what they
    must keep to is one slot per command, script or ``MULTI`` (`fraud_common.keys` tags
    the keys for it) and ``pipeline(transaction=False)`` across slots. Scripts may run in
    pipelines there too (see `ClusterClient`).
    """
    if cluster:
        return cast(
            redis.Redis,
            ClusterClient.from_url(
                url,
                socket_timeout=socket_timeout,
                socket_connect_timeout=connect_timeout or socket_timeout,
                health_check_interval=30,
                max_connections=max_connections,
                decode_responses=True,
            ),
        )
    return redis.Redis.from_url(
        url,
        socket_timeout=socket_timeout,
        socket_connect_timeout=connect_timeout or socket_timeout,
        health_check_interval=30,
        max_connections=max_connections,
        decode_responses=True,
    )


def slot_groups(
    client: redis.Redis, items: Sequence[T], key: Callable[[T], str]
) -> list[tuple[list[int], list[T]]]:
    """``items`` split for one script call each, with their positions in ``items``: all
    in one group on one Redis; on a cluster one group per hash slot of ``key(item)``,
    each in the items' order (a script's keys must share a slot)."""
    if not isinstance(client, redis.RedisCluster):
        return [(list(range(len(items))), list(items))]
    by_slot: dict[int, tuple[list[int], list[T]]] = {}
    for position, item in enumerate(items):
        group = by_slot.setdefault(key_slot(key(item).encode()), ([], []))
        group[0].append(position)
        group[1].append(item)
    return list(by_slot.values())


def run_reloading(client: redis.Redis, source: str, run: Callable[[], list[Any]]) -> list[Any]:
    """``run()``, a pipeline of ``EVALSHA`` calls of ``source`` executed with
    ``raise_on_error=False``; once more after loading the script when Redis lost it
    (restarted, or its script cache flushed). For idempotent scripts only: the calls
    that did run the first time are replays the second."""
    results = run()
    if any(isinstance(result, NoScriptError) for result in results):
        client.script_load(source)
        results = run()
    return results


class ClusterClient(redis.RedisCluster):
    """`redis.RedisCluster` whose pipelines may run registered Lua scripts.

    redis-py refuses ``EVALSHA`` in a cluster pipeline (it cannot load a missing script
    half-way through one), and the services run their scripts in pipelines (to send the
    durability confirmation with them, or a batch in one round trip). Here a pipeline
    sends each ``EVALSHA`` to the node of its keys' slot like any keyed command (a
    script's keys are in one slot, as outside a pipeline) and, before executing, loads
    on every primary the registered scripts it calls that some primary lacks (``SCRIPT
    EXISTS``, then ``SCRIPT LOAD``: one more round trip, as redis-py's own pipeline
    does on a single Redis).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.script_sources: dict[str, str] = {}

    def register_script(self, script: ScriptT) -> Script:
        registered = super().register_script(script)
        source = registered.script
        self.script_sources[registered.sha] = (
            source.decode() if isinstance(source, bytes) else str(source)
        )
        return registered

    def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> ClusterPipeline:
        pipe = super().pipeline(transaction=transaction, shard_hint=shard_hint)
        # The same object with scripts allowed: ScriptingClusterPipeline adds no state
        # beyond the two attributes set here.
        pipe.__class__ = ScriptingClusterPipeline
        assert isinstance(pipe, ScriptingClusterPipeline)  # for mypy
        pipe.parent = self
        pipe.needed_scripts = set()
        return pipe


class ScriptingClusterPipeline(ClusterPipeline):
    """The pipeline of `ClusterClient` (made by its ``pipeline()`` only)."""

    parent: ClusterClient
    needed_scripts: set[str]

    def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Any:
        self.needed_scripts.add(sha)
        return self.execute_command("EVALSHA", sha, numkeys, *keys_and_args)

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        needed, self.needed_scripts = sorted(self.needed_scripts), set()
        if needed:
            present = self.parent.script_exists(*needed)
            for sha, loaded in zip(needed, present, strict=True):
                if not loaded and sha in self.parent.script_sources:
                    self.parent.script_load(self.parent.script_sources[sha])
        return list(super().execute(raise_on_error))


RETRYABLE_ERRORS: tuple[type[Exception], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.BusyLoadingError,
    redis.exceptions.TryAgainError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.MasterDownError,
    redis.ReadOnlyError,
    redis.exceptions.OutOfMemoryError,  # maxmemory with noeviction: full, not broken
)
"""Errors that mean "Redis is away for now": retry later, never skip the work."""
