"""The detector's batch handler for `fraud_common.kafka.consumer_loop.ConsumerLoop`.

    decode:  bytes -> Transaction (InvalidMessage -> transactions.dlq, done by the loop)
    handle:  one Redis pipeline for the users' state
             -> rules -> decisions, each written once (SET NX GET), in one script call
                (``scripts/decide_batch.lua``; one per hash slot on a cluster) that
                also counts the rule stats of the decisions it stored first (on a
                cluster: a pipeline right after it, at most once)
             -> the alerts of the stored decisions, and each stored decision on the
                decisions topic (when one is set), every acknowledgement awaited
    reject:  a record the loop set aside gets the decision ``error`` with the reason

Each step is idempotent per transactionId: the state returns the first snapshot, the
first decision stays (a redelivery gets it back from SET NX GET and sends the alerts
it names, never a second judgement, even after the rules changed), and alert ids are
deterministic. Offsets are stored by the loop only after `handle` returns.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from typing import Protocol

import redis
from confluent_kafka import Message
from pydantic import ValidationError

from fraud_common import keys, metrics, tracing
from fraud_common.durability import RedisDurability
from fraud_common.kafka.consumer_loop import InvalidMessage, Record, Rejected
from fraud_common.kafka.producer import Headers, Outgoing
from fraud_common.money import FxRates
from fraud_common.schemas import (
    MAX_EVENT_AGE_CONTEXT,
    Alert,
    Decision,
    Transaction,
    validation_details,
)
from fraud_detection.decision_store import (
    READY_TTL_SECONDS,
    DecisionStore,
    RedisDecisionStore,
    StoredDecision,
)
from fraud_detection.evaluation import alerts_for, error_decision, evaluate, place_of
from fraud_detection.geo import Gazetteer
from fraud_detection.lists import ListStore, listed_pairs
from fraud_detection.rules import RuleSet
from fraud_detection.state import StateEntry, UserState

log = logging.getLogger(__name__)
alert_log = logging.getLogger("fraud_detection.alerts")


class MessageSender(Protocol):
    """What the handler produces through (`fraud_common.kafka.producer.AckingProducer`,
    or a stand-in that collects): ``send`` queues one message, the future resolves on
    the broker's acknowledgement; ``send_all`` queues several and returns once all are
    acknowledged (raises `DeliveryFailed` or ``TimeoutError`` otherwise)."""

    def send(
        self,
        topic: str,
        value: str | bytes,
        *,
        key: str | bytes | None = None,
        headers: Headers | None = None,
    ) -> Future[Message]: ...

    def send_all(self, messages: Sequence[Outgoing], timeout: float) -> None: ...


class TransactionHandler:
    def __init__(
        self,
        *,
        rules: Callable[[], RuleSet],
        state: UserState,
        lists: ListStore,
        redis_client: redis.Redis,
        producer: MessageSender,
        alerts_topic: str,
        fx_rates: FxRates,
        gazetteer: Callable[[], Gazetteer],
        decision_ttl_seconds: int,
        stats_ttl_seconds: int,
        ack_timeout_seconds: float,
        max_event_age: timedelta,
        durability: RedisDurability | None = None,
        clock: Callable[[], float] = time.time,
        decisions_topic: str | None = None,
        decision_store: DecisionStore | None = None,
        metrics_enabled: bool = True,
    ) -> None:
        """``decisions_topic``: where every stored decision is published (key = userId,
        value = the decision as stored, also on a redelivery); None or '' for nowhere.
        ``decision_store``: where the first decisions are kept (default: Redis, each for
        ``decision_ttl_seconds``). ``metrics_enabled``: whether the batches feed this
        process's Prometheus series (a backtest's replay has nobody to read them, and
        they were a twentieth of its Python)."""
        self._rules = rules
        self._state = state
        self._lists = lists
        self._redis = redis_client
        self._producer = producer
        self._alerts_topic = alerts_topic
        self._fx_rates = fx_rates
        self._gazetteer = gazetteer
        self._decision_ttl = decision_ttl_seconds
        self._stats_ttl = stats_ttl_seconds
        self._ack_timeout = ack_timeout_seconds
        self._decode_context = {MAX_EVENT_AGE_CONTEXT: max_event_age}
        self._durability = durability or RedisDurability()
        self._clock = clock
        self._decisions_topic = decisions_topic or None
        self._decisions = decision_store or RedisDecisionStore(
            redis_client, decision_ttl_seconds=decision_ttl_seconds
        )
        self._metrics_enabled = metrics_enabled

    def decode(self, message: Message) -> Transaction:
        raw = message.value()
        if not raw:
            raise InvalidMessage("empty message")
        if isinstance(raw, bytes):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidMessage(f"not valid UTF-8 (byte {exc.start})") from exc
        try:
            transaction = Transaction.model_validate_json(raw, context=self._decode_context)
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
            if errors and errors[0]["type"] == "json_invalid":
                raise InvalidMessage(f"not valid JSON: {errors[0]['msg']}") from exc
            problems = "; ".join(f"{d['field']} {d['message']}" for d in validation_details(exc))
            raise InvalidMessage(f"not a valid transaction: {problems}") from exc
        if transaction.amountUsd is None and not self._fx_rates.supports(transaction.currency):
            raise InvalidMessage(f"no exchange rate for {transaction.currency}")
        return transaction

    def handle(self, records: Sequence[Record[Transaction]]) -> None:
        started = time.perf_counter()
        rules = self._rules()  # one rule set for the whole batch, even across a reload
        gazetteer = self._gazetteer()
        transactions = [r.value for r in records]
        places = [place_of(t, gazetteer) for t in transactions]
        evaluated_at_ms = int(self._clock() * 1000)
        snapshots = self._state.record(
            [
                StateEntry(t, p.coordinates, p.candidates, t.usd_value(self._fx_rates))
                for t, p in zip(transactions, places, strict=True)
            ],
            evaluated_at_ms=evaluated_at_ms,
            lookback_ms=_ms(rules.lookback),
            places_lookback_ms=_ms(rules.places_lookback),
            user_ttl_seconds=int(rules.retention.total_seconds()) + 1,
        )
        listed = listed_pairs(
            self._lists,
            [spec.params for spec in rules.specs_of_type("list_match")],
            transactions,
            at_ms=evaluated_at_ms,
        )
        judged = [
            _with_trace(evaluate(rules, t, p, s, self._fx_rates, on_lists), r.headers)
            for r, t, p, s, on_lists in zip(
                records, transactions, places, snapshots, listed, strict=True
            )
        ]
        decisions = self._decisions.store_first(rules, judged)  # and counts their rule stats
        if self._metrics_enabled:
            _observe_first_decisions(transactions, decisions, self._clock())
        alerts = self._publish(transactions, decisions)
        self._count_evaluated(decisions)
        for alert, replayed in alerts:
            _log_alert(alert, replayed)
        if self._metrics_enabled:
            metrics.EVALUATION_DURATION.observe(time.perf_counter() - started)

    def reject(self, rejected: Rejected) -> None:
        """A transaction that cannot be evaluated gets the decision ``error`` (unless it
        was decided before), readable on ``GET /api/v1/transactions/<id>``."""
        transaction_id = _transaction_id_of(rejected)
        if transaction_id is None:
            return  # nothing names the transaction: the dead letter is all there is
        decision = error_decision(transaction_id, rejected.reason, datetime.now(UTC)).model_copy(
            update={"traceId": _trace_id_of(rejected.headers)}
        )
        text = decision.to_json()
        pipe = self._redis.pipeline(transaction=False)
        pipe.set(keys.decision(transaction_id), text, ex=self._decision_ttl, nx=True, get=True)
        pipe.rpush(keys.decision_ready(transaction_id), 1)  # wakes a `Prefer: wait` request
        pipe.expire(keys.decision_ready(transaction_id), READY_TTL_SECONDS)
        before = self._durability.execute(pipe)[0]
        if before is None:  # SET NX GET: this is its first decision
            metrics.TRANSACTIONS_EVALUATED.labels(decision.status).inc()
        if self._decisions_topic is not None:
            user = _user_of(rejected)
            self._producer.send_all(
                [Outgoing(self._decisions_topic, text if before is None else before, user)],
                self._ack_timeout,
            )

    def _publish(
        self, transactions: list[Transaction], decisions: list[StoredDecision]
    ) -> list[tuple[Alert, bool]]:
        """The alerts of the stored decisions, and the decisions themselves on the
        decisions topic; returns once the broker acknowledged every one."""
        sent: dict[str, tuple[Alert, bool]] = {}
        messages: list[Outgoing] = []
        published: set[str] = set()
        for transaction, stored in zip(transactions, decisions, strict=True):
            decision, replayed = stored.decision, stored.replayed
            if self._decisions_topic is not None and transaction.transactionId not in published:
                published.add(transaction.transactionId)
                messages.append(Outgoing(self._decisions_topic, stored.text(), transaction.userId))
            for alert in alerts_for(transaction, decision):
                if alert.alertId in sent:  # the same transaction twice in one batch
                    continue
                sent[alert.alertId] = (alert, replayed)
                messages.append(
                    Outgoing(
                        self._alerts_topic,
                        alert.to_json(),
                        alert.transaction.userId,
                        _alert_headers(alert),
                    )
                )
        self._producer.send_all(messages, self._ack_timeout)
        return list(sent.values())

    def _count_evaluated(self, decisions: list[StoredDecision]) -> None:
        """The transactions handled this second (every one of the batch, redeliveries
        too, as before), the batch's last write: with REDIS_DURABILITY on, it returns
        only once every write of the batch (state, decisions, rule counters) is on disk,
        before offsets are stored. The rule counters are written with the decisions
        (`DecisionStore.store_first`), so a batch retried after a failed publish counts
        them once."""
        stats_key = keys.stats_transactions(int(self._clock()))
        pipe = self._redis.pipeline(transaction=False)
        pipe.incrby(stats_key, len(decisions))
        pipe.expire(stats_key, self._stats_ttl)
        self._durability.execute(pipe)


def _observe_first_decisions(
    transactions: list[Transaction], decisions: list[StoredDecision], now: float
) -> None:
    """The decision series, counted once per transaction: right after the decisions are
    stored (SET NX), so a batch retried later finds them stored and counts nothing.
    Counters are summed over the batch first: one ``labels`` lookup per label set."""
    statuses: Counter[str] = Counter()
    hits: Counter[tuple[str, str]] = Counter()
    for transaction, (decision, replayed, _) in zip(transactions, decisions, strict=True):
        if replayed:
            continue
        statuses[decision.status] += 1
        metrics.DECISION_LATENCY.observe(max(0.0, now - transaction.receivedAt.timestamp()))
        for reason in decision.reasons:
            hits[reason.ruleId, "active"] += 1
        for reason in decision.shadowHits:
            hits[reason.ruleId, "shadow"] += 1
    for status, count in statuses.items():
        metrics.TRANSACTIONS_EVALUATED.labels(status).inc(count)
    for (rule_id, mode), count in hits.items():
        metrics.RULE_HITS.labels(rule_id, mode).inc(count)


def _with_trace(decision: Decision, headers: dict[str, str]) -> Decision:
    """The decision with the trace of its transaction's POST (copied only when it has one:
    `evaluate` leaves ``traceId`` unset)."""
    trace_id = _trace_id_of(headers)
    if trace_id == decision.traceId:
        return decision
    return decision.model_copy(update={"traceId": trace_id})


def _trace_id_of(headers: dict[str, str]) -> str | None:
    """The trace of the POST that accepted the transaction (none for one re-driven by the
    reconciler, which has no header to pass on)."""
    trace = tracing.parse(headers.get(tracing.HEADER))
    return None if trace is None else trace.trace_id


def _alert_headers(alert: Alert) -> list[tuple[str, str | bytes]]:
    """The alert's id and type, and its trace (the first delivery's, like its decision)."""
    headers: list[tuple[str, str | bytes]] = [
        ("alert-id", alert.alertId),
        ("alert-type", alert.alertType),
    ]
    if alert.traceId is not None:
        headers.append((tracing.HEADER, tracing.new_span(alert.traceId).header()))
    return headers


def _ms(span: timedelta) -> int:
    return int(span.total_seconds() * 1000)


def _transaction_id_of(rejected: Rejected) -> str | None:
    """The id a rejected message names: decoded, in its JSON, or in its header."""
    if isinstance(rejected.value, Transaction):
        return rejected.value.transactionId
    candidate: object = None
    try:
        raw = json.loads(rejected.raw)
        if isinstance(raw, dict):
            candidate = raw.get("transactionId")
    except (ValueError, RecursionError):  # not JSON, not UTF-8, nested too deeply
        pass
    if not isinstance(candidate, str):
        candidate = rejected.headers.get("transaction-id")
    if isinstance(candidate, str) and 0 < len(candidate) <= 64:
        return candidate
    return None


def _user_of(rejected: Rejected) -> str | None:
    """The user a rejected message belongs to: decoded, else its key."""
    if isinstance(rejected.value, Transaction):
        return rejected.value.userId
    return None if rejected.key is None else rejected.key.decode("utf-8", errors="replace")


def _log_alert(alert: Alert, replayed: bool) -> None:
    txn = alert.transaction
    alert_log.warning(
        "FRAUD ALERT %s user=%s amount=%s %s at %s: %s",
        alert.alertType,
        txn.userId,
        txn.amount,
        txn.currency,
        txn.location,
        alert.message,
        extra={
            "alert_id": alert.alertId,
            "alert_type": alert.alertType,
            "severity": alert.severity,
            "transaction_id": txn.transactionId,
            "user_id": txn.userId,
            "replayed": replayed,
            "trace_id": alert.traceId,
        },
    )
