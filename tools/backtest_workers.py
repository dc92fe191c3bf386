"""Run a backtest's replays in forked worker processes, each on its own private Redis.

Users are split by a hash of their id into ``workers`` shards (each user's transactions
stay in one shard, in order; every rule reads only its user's state, so the judgement is
the one a single process gives). Each worker replays its shard through every rule set
asked for (`tools.backtest_replay.replay`: a fresh private ``redis-server`` per pass)
and sends back only the decisions' fields, never a pickled transaction (unpickling a
`Transaction` costs about as much as parsing its line).

Before the fork the gazetteer is loaded once and, with the loaded transactions, frozen
out of the cyclic garbage collector (`gc.freeze`): millions of long-lived objects a full
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
from multiprocessing.connection import Connection

from fraud_common.schemas import Transaction
from fraud_detection.geo import load_gazetteer
from fraud_detection.rules import RuleSet
from fraud_detection.settings import DetectorSettings
from tools.backtest_replay import DEFAULT_BATCH, Judged, replay

YOUNG_THRESHOLD = 50_000
"""Allocations between collections of the youngest generation (CPython's default: 700)."""

_Fields = tuple[str, tuple[str, ...], tuple[str, ...], str | None]


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


def run(
    rule_sets: Sequence[tuple[str, RuleSet]],
    transactions: Sequence[Transaction],
    *,
    workers: int,
    batch_size: int = DEFAULT_BATCH,
    progress: bool = True,
    usage: Usage | None = None,
) -> list[list[Judged]]:
    """Per ``(label, rules)``, the decision of every transaction (in the order given),
    each pass on fresh private state."""
    usage = usage if usage is not None else Usage()
    main_before, children_before = _cpu()
    load_gazetteer(DetectorSettings.model_fields["gazetteer_min_population"].default)
    workers = max(1, min(workers, len(transactions) // max(batch_size, 1)))
    with few_collections():
        if workers == 1:
            results = [
                replay(rules, transactions, batch_size=batch_size, label=label, progress=progress)
                for label, rules in rule_sets
            ]
        else:
            results = _forked(rule_sets, transactions, workers, batch_size, progress, usage)
    main_after, children_after = _cpu()
    usage.main = main_after - main_before
    if workers == 1:
        usage.redis = [children_after - children_before]
    return results


def _forked(
    rule_sets: Sequence[tuple[str, RuleSet]],
    transactions: Sequence[Transaction],
    workers: int,
    batch_size: int,
    progress: bool,
    usage: Usage,
) -> list[list[Judged]]:
    shards = shard_by_user(transactions, workers)
    context = multiprocessing.get_context("fork")
    started = []
    for number, shard in enumerate(shards):
        receiver, sender = context.Pipe(duplex=False)
        process = context.Process(
            target=_worker,
            args=(sender, rule_sets, shard, batch_size, progress and number == 0),
            daemon=True,
        )
        process.start()
        sender.close()
        started.append((process, receiver))
    by_id: list[dict[str, Judged]] = [{} for _ in rule_sets]
    for (process, receiver), shard in zip(started, shards, strict=True):
        outcome = receiver.recv()
        process.join()
        if isinstance(outcome, str):
            raise RuntimeError(f"backtest worker failed: {outcome}")
        passes, worker_cpu, redis_cpu = outcome
        usage.workers.append(worker_cpu)
        usage.redis.append(redis_cpu)
        for judged, fields in zip(by_id, passes, strict=True):
            judged.update(
                (t.transactionId, Judged(t.transactionId, t.userId, *one))
                for t, one in zip(shard, fields, strict=True)
            )
    return [[judged[t.transactionId] for t in transactions] for judged in by_id]


def _worker(
    sender: Connection,
    rule_sets: Sequence[tuple[str, RuleSet]],
    shard: Sequence[Transaction],
    batch_size: int,
    progress: bool,
) -> None:
    """One forked worker: its shard's decisions per pass and its CPU (or why it failed)
    down the pipe."""
    try:
        passes: list[list[_Fields]] = [
            [
                (one.status, one.alerts, one.shadow, one.allowed_by)
                for one in replay(
                    rules, shard, batch_size=batch_size, label=label, progress=progress
                )
            ]
            for label, rules in rule_sets
        ]
        own, children = _cpu()
        sender.send((passes, own, children))
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises it
        sender.send(f"{type(exc).__name__}: {exc}")
    sender.close()


def shard_by_user(transactions: Sequence[Transaction], workers: int) -> list[list[Transaction]]:
    """``workers`` shards, every user's transactions in one (in their order): a user's
    state never spans two workers, so each shard replays exactly as the whole would."""
    shards: list[list[Transaction]] = [[] for _ in range(workers)]
    for transaction in transactions:
        shards[zlib.crc32(transaction.userId.encode()) % workers].append(transaction)
    return shards
