"""Replay transactions through one rule set with the detector's own code, on private state.

The detector's `TransactionHandler` does the work exactly as in production: the user
state script, the place resolution, every rule, the decision and its alerts. Only what
is around it differs:

- Redis is a private ``redis-server`` started here on a free port (no persistence) and
  stopped after, so a backtest never reads or writes the live keys;
- the first decisions are kept in this process (`MemoryDecisionStore`: the same "first
  decision stays, rule stats counted once" as in Redis, without the round trip), and
  the producer is `Collector`, which sends nothing anywhere;
- the handler feeds no Prometheus series (``metrics_enabled=False``);
- the state keeps no snapshots for redeliveries (``evaluation_ttl_seconds=0``): the
  input holds each transaction once and nothing is redelivered;
- the clock is the batch's latest event time, so decisions and alerts carry the same
  times in every run.

Transactions go in event-time order, in batches of ``batch_size`` (the handler keeps
the order within a batch, as it does for one partition's records).
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Sequence
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple, cast

from confluent_kafka import Message

from fraud_common.kafka.consumer_loop import Record
from fraud_common.kafka.producer import Headers, Outgoing
from fraud_common.money import load_fx_rates
from fraud_common.redis_client import connect
from fraud_common.schemas import Decision, Transaction
from fraud_detection.decision_store import MemoryDecisionStore
from fraud_detection.geo import load_gazetteer
from fraud_detection.handler import TransactionHandler
from fraud_detection.lists import ListStore
from fraud_detection.rules import RuleSet
from fraud_detection.settings import DetectorSettings
from fraud_detection.state import UserState
from tools.local_services import RedisServer

DECISIONS = "backtest-decisions"
ALERTS = "backtest-alerts"
DEFAULT_BATCH = 2000


def _default(name: str) -> Any:
    """A detector setting's default: the backtest keeps the state the detector keeps."""
    return DetectorSettings.model_fields[name].default


class Judged(NamedTuple):
    """One transaction's decision as the detector stored it (a named tuple: one is built
    per transaction and pass, and a tuple is the cheapest immutable record to build)."""

    transaction_id: str
    user_id: str
    status: str
    alerts: tuple[str, ...]
    """The active rules that fired (each one an alert)."""
    shadow: tuple[str, ...]
    allowed_by: str | None


class Collector:
    """The handler's `MessageSender`: sends nothing, keeps what is published to the
    ``DECISIONS`` topic (a handler with ``decisions_topic=DECISIONS``; the backtest's
    has none, it reads its `MemoryDecisionStore`)."""

    def __init__(self) -> None:
        self.decisions: list[str] = []
        self._done: Future[Message] = Future()
        self._done.set_result(cast(Message, None))

    def send(
        self,
        topic: str,
        value: str | bytes,
        *,
        key: str | bytes | None = None,
        headers: Headers | None = None,
    ) -> Future[Message]:
        if topic == DECISIONS:
            self.decisions.append(value if isinstance(value, str) else value.decode())
        return self._done

    def send_all(self, messages: Sequence[Outgoing], timeout: float) -> None:
        for message in messages:
            self.send(message.topic, message.value, key=message.key, headers=message.headers)


def _judged(decision: Decision, user_id: str) -> Judged:
    return Judged(
        decision.transactionId,
        user_id,
        decision.status,
        tuple(r.ruleId for r in decision.reasons) if decision.reasons else (),
        tuple(r.ruleId for r in decision.shadowHits) if decision.shadowHits else (),
        decision.allowedBy,
    )


class Progress:
    """A line on stderr every ``every`` seconds while a long replay runs."""

    def __init__(self, label: str, total: int, *, every: float = 2.0, enabled: bool = True):
        self._label, self._total, self._every, self._enabled = label, total, every, enabled
        self._started = self._last = time.monotonic()

    def update(self, done: int) -> None:
        now = time.monotonic()
        if self._enabled and now - self._last >= self._every:
            self._last = now
            rate = done / max(now - self._started, 1e-9)
            print(
                f"backtest{self._label and ' ' + self._label}: {done:,}/{self._total:,} "
                f"transactions ({rate:,.0f}/s)",
                file=sys.stderr,
                flush=True,
            )


def replay(
    rules: RuleSet,
    transactions: Sequence[Transaction],
    *,
    batch_size: int = DEFAULT_BATCH,
    label: str = "",
    progress: bool = True,
    redis_dir: Path | None = None,
) -> list[Judged]:
    """The decision of every transaction (in the order given), on fresh private state
    (splitting the users over processes is `tools.backtest_workers`')."""
    with RedisServer(redis_dir, appendonly=False) as server:
        return replay_on(
            server.url, rules, transactions, batch_size=batch_size, label=label, progress=progress
        )


def replay_on(
    url: str,
    rules: RuleSet,
    transactions: Sequence[Transaction],
    *,
    batch_size: int = DEFAULT_BATCH,
    label: str = "",
    progress: bool = True,
) -> list[Judged]:
    """`replay` on the private Redis at ``url``: its state must be this pass's alone (a
    worker replays several shards of users on one, each user in one shard only)."""
    client = connect(url, socket_timeout=60.0)
    try:
        reporter = Progress(label, len(transactions), enabled=progress)
        return _replay(client, rules, transactions, batch_size, reporter)
    finally:
        client.close()


def _replay(
    client: Any,
    rules: RuleSet,
    transactions: Sequence[Transaction],
    batch_size: int,
    progress: Progress,
) -> list[Judged]:
    store = MemoryDecisionStore()
    clock = _BatchClock()
    handler = TransactionHandler(
        rules=lambda: rules,
        state=UserState(
            client,
            late_allowance_ms=_default("late_event_allowance_seconds") * 1000,
            max_entries=_default("window_max_entries"),
            evaluation_ttl_seconds=0,  # no snapshots: each transaction is replayed once
            user_ttl_seconds=_default("user_state_ttl_seconds"),
        ),
        lists=ListStore(client, clock=clock),
        redis_client=client,
        producer=Collector(),
        alerts_topic=ALERTS,
        fx_rates=load_fx_rates(None),
        gazetteer=functools.partial(load_gazetteer, _default("gazetteer_min_population")),
        decision_ttl_seconds=_default("decision_ttl_seconds"),
        stats_ttl_seconds=_default("stats_ttl_seconds"),
        ack_timeout_seconds=60.0,
        max_event_age=timedelta(seconds=_default("max_event_age_seconds")),
        clock=clock,
        decision_store=store,
        metrics_enabled=False,
    )
    judged: list[Judged] = []
    for start in range(0, len(transactions), batch_size):
        batch = transactions[start : start + batch_size]
        clock.now = batch[-1].timestamp.timestamp()
        handler.handle(
            [Record(t, "transactions", 0, start + i, t.userId, {}) for i, t in enumerate(batch)]
        )
        judged.extend(_judged(store.first[t.transactionId], t.userId) for t in batch)
        progress.update(len(judged))
    return judged


class _BatchClock:
    """The handler's clock: the batch's latest event time (epoch seconds)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).timestamp()

    def __call__(self) -> float:
        return self.now
