"""Run a backtest's replays in forked worker processes, each on its own private Redis.

The input arrives scanned (`tools.backtest_input.scan`: each line's JSON object, not
yet validated). Its objects are split by a hash of their ``userId`` into ``workers``
shards (each user's transactions stay in one shard, in input order; every rule reads
only its user's state, so the judgement is the one a single process gives). Each worker
validates its shard (`tools.backtest_input.accept`, the costly part of reading: so it
runs on every core), replays it in event-time order through every rule set asked for
(`tools.backtest_replay.replay`: a fresh private ``redis-server`` per pass) and sends
back only what it skipped and the decisions' fields, never a pickled transaction
(unpickling a `Transaction` costs about as much as validating its line).

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
from multiprocessing.connection import Connection
from operator import itemgetter
from typing import Any

from fraud_detection.geo import load_gazetteer
from fraud_detection.rules import RuleSet
from fraud_detection.settings import DetectorSettings
from tools.backtest_input import Loaded, Scanned, accept
from tools.backtest_replay import DEFAULT_BATCH, Judged, replay

YOUNG_THRESHOLD = 50_000
"""Allocations between collections of the youngest generation (CPython's default: 700)."""

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
            shards = shard_by_user(scanned.objects, workers)
            passes, loaded = _forked(rule_sets, shards, (since, until), batch_size, progress, usage)
    loaded.add_counts(scanned.loaded)
    main_after, children_after = _cpu()
    usage.main = main_after - main_before
    if workers == 1:
        usage.redis = [children_after - children_before]
    return Replayed(passes, loaded)


def _forked(
    rule_sets: Sequence[tuple[str, RuleSet]],
    shards: list[list[_Object]],
    selection: tuple[datetime | None, datetime | None],
    batch_size: int,
    progress: bool,
    usage: Usage,
) -> tuple[list[list[Judged]], Loaded]:
    context = multiprocessing.get_context("fork")
    started = []
    for number, shard in enumerate(shards):
        receiver, sender = context.Pipe(duplex=False)
        process = context.Process(
            target=_worker,
            args=(sender, shard, selection, rule_sets, batch_size, progress and number == 0),
            daemon=True,
        )
        process.start()
        sender.close()
        started.append((process, receiver))
    skipped = Loaded([])
    timed: list[list[tuple[datetime, Judged]]] = [[] for _ in rule_sets]
    for process, receiver in started:
        outcome = receiver.recv()
        process.join()
        if isinstance(outcome, str):
            raise RuntimeError(f"backtest worker failed: {outcome}")
        shard_skipped, replayed, passes, worker_cpu, redis_cpu = outcome
        skipped.add_counts(shard_skipped)
        usage.workers.append(worker_cpu)
        usage.redis.append(redis_cpu)
        for judged, fields in zip(timed, passes, strict=True):
            judged.extend(
                (event_time, Judged(transaction_id, user_id, *one))
                for (event_time, transaction_id, user_id), one in zip(replayed, fields, strict=True)
            )
    for judged in timed:
        judged.sort(key=itemgetter(0))  # each shard is in event-time order already
    return [[one for _, one in judged] for judged in timed], skipped


def _worker(
    sender: Connection,
    shard: Sequence[_Object],
    selection: tuple[datetime | None, datetime | None],
    rule_sets: Sequence[tuple[str, RuleSet]],
    batch_size: int,
    progress: bool,
) -> None:
    """One forked worker: what its shard skipped, its transactions' event times and ids,
    their decisions per pass and its CPU (or why it failed) down the pipe."""
    try:
        since, until = selection
        loaded = accept(shard, since=since, until=until)
        transactions, loaded.transactions = loaded.transactions, []
        gc.freeze()  # the shard's transactions, as the parent froze what it holds
        passes: list[list[_Fields]] = [
            [
                (one.status, one.alerts, one.shadow, one.allowed_by)
                for one in replay(
                    rules, transactions, batch_size=batch_size, label=label, progress=progress
                )
            ]
            for label, rules in rule_sets
        ]
        replayed = [(t.timestamp, t.transactionId, t.userId) for t in transactions]
        own, children = _cpu()
        sender.send((loaded, replayed, passes, own, children))
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises it
        sender.send(f"{type(exc).__name__}: {exc}")
    sender.close()


def shard_by_user(objects: Sequence[_Object], workers: int) -> list[list[_Object]]:
    """``workers`` shards, every user's lines in one (in input order): a user's state
    never spans two workers, so each shard replays exactly as the whole would. A line
    without a valid ``userId`` lands anywhere: validating it skips it."""
    shards: list[list[_Object]] = [[] for _ in range(workers)]
    for item in objects:
        user = item[2].get("userId")
        shards[zlib.crc32(str(user).encode()) % workers].append(item)
    return shards
