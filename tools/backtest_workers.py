"""Run a backtest's replays in forked worker processes, each on its own private Redis.

The input arrives scanned (`tools.backtest_input.scan`: each line's JSON object, not
yet validated). Its objects are split by a hash of their ``userId`` into shards,
`SHARDS_PER_WORKER` per worker (each user's transactions stay in one shard, in input
order; every rule reads only its user's state, so the judgement is the one a single
process gives). Each worker starts one private ``redis-server`` per rule set asked for,
then takes the next shard nobody has taken until none is left: it validates the shard
(`tools.backtest_input.accept`, the costly part of reading: so it runs on every core),
replays it in event-time order through every rule set (`tools.backtest_replay.replay_on`)
and sends back only what it skipped and the decisions' fields, never a pickled
transaction (unpickling a `Transaction` costs about as much as validating its line).
This process merges the shards as they arrive, in the order one process would give:
by event time, then input position.

Before the fork the gazetteer is loaded once and, with the scanned input, frozen out of
the cyclic garbage collector (`gc.freeze`): millions of long-lived objects a full
collection would otherwise walk again and again, and pages the fork then shares. In the
workers the youngest generation is collected less often (the per-batch objects die
young; the few cycles among them are still collected).
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing import connection
from multiprocessing.connection import Connection
from operator import itemgetter
from typing import Any, NamedTuple, cast

from fraud_detection.geo import load_gazetteer
from fraud_detection.rules import RuleSet
from fraud_detection.settings import DetectorSettings
from tools.backtest_input import Loaded, Scanned, accept
from tools.backtest_replay import DEFAULT_BATCH, Judged, Progress, replay, replay_on
from tools.local_services import RedisServer

SHARDS_PER_WORKER = 32
"""Shards of users per worker, taken one at a time: a worker that is through with its
share takes the next one left, so both cores work until the end (with one shard per
worker, one shard costlier than the other, or a core slowed by the host, left the other
core idle for up to a sixth of the run; with 8, the last shard alone still took a
tenth)."""
YOUNG_THRESHOLD = 200_000
"""Allocations between collections of the youngest generation (CPython's default: 700;
each collection walks the batch's live objects, so fewer is cheaper: callgrind over
12,000 replayed transactions, 251k Python instructions each at 50,000, 243k at 200,000,
and no lower with none at all)."""

_Fields = tuple[str, tuple[str, ...], tuple[str, ...], str | None]
_Object = tuple[int, str, dict[str, Any]]
"""A scanned line: its position in the input, where it came from, its JSON object."""


@dataclass
class Usage:
    """CPU seconds of a run by process: this one, each worker, each worker's Redis."""

    main: float = 0.0
    workers: list[float] = field(default_factory=list)
    redis: list[float] = field(default_factory=list)

    def total(self) -> float:
        return self.main + sum(self.workers) + sum(self.redis)


def default_workers() -> int:
    """One worker per core this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _cpu() -> tuple[float, float]:
    """CPU seconds of this process, and of its reaped children (its redis-servers)."""
    times = os.times()
    return times.user + times.system, times.children_user + times.children_system


@contextlib.contextmanager
def few_collections() -> Iterator[None]:
    """What is alive now frozen out of the collector, the youngest generation collected
    less often; both undone after."""
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


@dataclass
class Replayed:
    """A backtest's result: per rule set the decision of every transaction replayed, in
    event-time order, and what the input lost (counts and problems; no transactions)."""

    passes: list[list[Judged]]
    skipped: Loaded


def run(
    rule_sets: Sequence[tuple[str, RuleSet]],
    scanned: Scanned,
    *,
    workers: int,
    since: datetime | None = None,
    until: datetime | None = None,
    batch_size: int = DEFAULT_BATCH,
    progress: bool = True,
    usage: Usage | None = None,
) -> Replayed:
    """Validate the scanned input, keep event times in ``[since, until)``, and per
    ``(label, rules)`` replay it, each pass on fresh private state."""
    usage = usage if usage is not None else Usage()
    main_before, children_before = _cpu()
    load_gazetteer(DetectorSettings.model_fields["gazetteer_min_population"].default)
    workers = max(1, min(workers, len(scanned.objects) // max(batch_size, 1)))
    with few_collections():
        if workers == 1:
            loaded = accept(scanned.objects, since=since, until=until)
            passes = [
                replay(
                    rules,
                    loaded.transactions,
                    batch_size=batch_size,
                    label=label,
                    progress=progress,
                )
                for label, rules in rule_sets
            ]
            loaded.transactions = []
        else:
            passes, loaded = _forked(
                rule_sets, scanned.objects, workers, (since, until), batch_size, progress, usage
            )
    loaded.add_counts(scanned.loaded)
    main_after, children_after = _cpu()
    usage.main = main_after - main_before
    if workers == 1:
        usage.redis = [children_after - children_before]
    return Replayed(passes, loaded)


def _forked(
    rule_sets: Sequence[tuple[str, RuleSet]],
    objects: Sequence[_Object],
    workers: int,
    selection: tuple[datetime | None, datetime | None],
    batch_size: int,
    progress: bool,
    usage: Usage,
) -> tuple[list[list[Judged]], Loaded]:
    """Workers take shards from a shared counter until none is left, and send each
    shard's outcome as soon as it is replayed; this process merges them as they come."""
    shards = shard_by_user(objects, workers * SHARDS_PER_WORKER)
    context = multiprocessing.get_context("fork")
    next_shard = context.Value("i", 0)
    receivers: dict[Any, Any] = {}  # receiving end -> its worker process
    for _ in range(workers):
        receiver, sender = context.Pipe(duplex=False)
        worker = context.Process(
            target=_worker,
            args=(sender, shards, next_shard, selection, rule_sets, batch_size),
            daemon=True,
        )
        worker.start()
        sender.close()
        receivers[receiver] = worker
    skipped = Loaded([])
    keyed: list[list[tuple[tuple[datetime, int], Judged]]] = [[] for _ in rule_sets]
    reporter = Progress("", len(objects), enabled=progress)
    while receivers:
        for ready in cast(list[Connection], connection.wait(list(receivers))):
            process = receivers[ready]
            try:
                outcome: _Shard | _Done | str = ready.recv()
            except EOFError:
                process.join()
                raise RuntimeError(f"backtest worker died (exit code {process.exitcode})") from None
            if isinstance(outcome, str):
                raise RuntimeError(f"backtest worker failed: {outcome}")
            if isinstance(outcome, _Done):
                usage.workers.append(outcome.cpu)
                usage.redis.append(outcome.redis_cpu)
                del receivers[ready]
                process.join()
                continue
            skipped.add_counts(outcome.skipped)
            for judged, fields in zip(keyed, outcome.passes, strict=True):
                judged.extend(
                    (key, Judged(transaction_id, user_id, *one))
                    for (key, transaction_id, user_id), one in zip(
                        outcome.replayed, fields, strict=True
                    )
                )
            reporter.update(len(keyed[0]))
    for judged in keyed:
        judged.sort(key=itemgetter(0))  # (event time, input position): one process's order
    return [[one for _, one in judged] for judged in keyed], skipped


@dataclass
class _Shard:
    """A worker's outcome of one shard: what it skipped, its transactions' sort keys
    ((event time, input position)), ids and users, and per pass their decisions."""

    skipped: Loaded
    replayed: list[tuple[tuple[datetime, int], str, str]]
    passes: list[list[_Fields]]


class _Done(NamedTuple):
    """A worker's last message: its CPU seconds and its redis-servers'."""

    cpu: float
    redis_cpu: float


def _worker(
    sender: Connection,
    shards: Sequence[Sequence[_Object]],
    next_shard: Any,
    selection: tuple[datetime | None, datetime | None],
    rule_sets: Sequence[tuple[str, RuleSet]],
    batch_size: int,
) -> None:
    """One forked worker: one private Redis per pass, then shard after shard (the next
    one not yet taken) validated and replayed through every pass; each shard's outcome,
    then its CPU (or why it failed), down the pipe."""
    try:
        since, until = selection
        with contextlib.ExitStack() as stack:
            servers = [stack.enter_context(RedisServer(None, appendonly=False)) for _ in rule_sets]
            while (index := _take(next_shard)) < len(shards):
                loaded = accept(shards[index], since=since, until=until)
                transactions, loaded.transactions = loaded.transactions, []
                positions, loaded.positions = loaded.positions, []
                gc.freeze()  # the shard's transactions, as the parent froze what it holds
                passes: list[list[_Fields]] = [
                    [
                        (one.status, one.alerts, one.shadow, one.allowed_by)
                        for one in replay_on(
                            server.url, rules, transactions, batch_size=batch_size,
                            label=label, progress=False,
                        )
                    ]
                    for server, (label, rules) in zip(servers, rule_sets, strict=True)
                ]  # fmt: skip
                replayed = [
                    ((t.timestamp, position), t.transactionId, t.userId)
                    for t, position in zip(transactions, positions, strict=True)
                ]
                sender.send(_Shard(loaded, replayed, passes))
        own, children = _cpu()
        sender.send(_Done(own, children))
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises it
        sender.send(f"{type(exc).__name__}: {exc}")
    sender.close()


def _take(counter: Any) -> int:
    """The next shard's index (each one taken by one worker only)."""
    with counter.get_lock():
        index = int(counter.value)
        counter.value = index + 1
    return index


def shard_by_user(objects: Sequence[_Object], workers: int) -> list[list[_Object]]:
    """``workers`` shards, every user's lines in one (in input order): a user's state
    never spans two workers, so each shard replays exactly as the whole would. A line
    without a valid ``userId`` lands anywhere: validating it skips it."""
    shards: list[list[_Object]] = [[] for _ in range(workers)]
    for item in objects:
        user = item[2].get("userId")
        shards[zlib.crc32(str(user).encode()) % workers].append(item)
    return shards
