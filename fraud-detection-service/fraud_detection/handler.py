"""The detector's batch handler for `fraud_common.kafka.consumer_loop.ConsumerLoop`.

    decode:  bytes -> Transaction (InvalidMessage -> transactions.dlq, done by the loop)
    handle:  one Redis pipeline for the users' state
             -> rules -> alerts sent to the alerts topic, every acknowledgement awaited
             -> one Redis pipeline for the decisions and the throughput counter

Any exception makes the loop retry the whole batch; each step is idempotent per
transactionId (the state returns the first snapshot, alert ids are deterministic,
decisions are overwritten with the same value), so a retry changes nothing that was
already done. Offsets are stored by the loop only after `handle` returns.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future

import redis
from confluent_kafka import Message
from pydantic import ValidationError

from fraud_common import keys
from fraud_common.kafka.consumer_loop import InvalidMessage, Record
from fraud_common.kafka.producer import AckingProducer
from fraud_common.money import FxRates
from fraud_common.schemas import Alert, Transaction, validation_details
from fraud_detection.evaluation import Evaluation, evaluate, place_of
from fraud_detection.geo import Gazetteer
from fraud_detection.rules import RuleSet
from fraud_detection.state import StateEntry, UserState

log = logging.getLogger(__name__)
alert_log = logging.getLogger("fraud_detection.alerts")


class TransactionHandler:
    def __init__(
        self,
        *,
        rules: Callable[[], RuleSet],
        state: UserState,
        redis_client: redis.Redis,
        producer: AckingProducer,
        alerts_topic: str,
        fx_rates: FxRates,
        gazetteer: Callable[[], Gazetteer],
        decision_ttl_seconds: int,
        stats_ttl_seconds: int,
        ack_timeout_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._rules = rules
        self._state = state
        self._redis = redis_client
        self._producer = producer
        self._alerts_topic = alerts_topic
        self._fx_rates = fx_rates
        self._gazetteer = gazetteer
        self._decision_ttl = decision_ttl_seconds
        self._stats_ttl = stats_ttl_seconds
        self._ack_timeout = ack_timeout_seconds
        self._clock = clock

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
            transaction = Transaction.model_validate_json(raw)
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
            if errors and errors[0]["type"] == "json_invalid":
                raise InvalidMessage(f"not valid JSON: {errors[0]['msg']}") from exc
            problems = "; ".join(f"{d['field']} {d['message']}" for d in validation_details(exc))
            raise InvalidMessage(f"not a valid transaction: {problems}") from exc
        if not self._fx_rates.supports(transaction.currency):
            raise InvalidMessage(f"no exchange rate for {transaction.currency}")
        return transaction

    def handle(self, records: Sequence[Record[Transaction]]) -> None:
        rules = self._rules()  # one rule set for the whole batch, even across a reload
        gazetteer = self._gazetteer()
        transactions = [r.value for r in records]
        places = [place_of(t, gazetteer) for t in transactions]
        snapshots = self._state.record(
            [StateEntry(t, p.coordinates) for t, p in zip(transactions, places, strict=True)],
            evaluated_at_ms=int(self._clock() * 1000),
            lookback_ms=int(rules.lookback.total_seconds() * 1000),
        )
        evaluations = [
            evaluate(rules, t, p, s, self._fx_rates)
            for t, p, s in zip(transactions, places, snapshots, strict=True)
        ]
        alerts = self._publish_alerts(evaluations)
        self._record_decisions(evaluations)
        for alert, replayed in alerts:
            _log_alert(alert, replayed)

    def _publish_alerts(self, evaluations: list[Evaluation]) -> list[tuple[Alert, bool]]:
        sent: dict[str, tuple[Alert, bool]] = {}
        futures: list[Future[Message]] = []
        for evaluation in evaluations:
            for alert in evaluation.alerts():
                if alert.alertId in sent:  # the same transaction twice in one batch
                    continue
                sent[alert.alertId] = (alert, evaluation.replayed)
                futures.append(
                    self._producer.send(
                        self._alerts_topic,
                        alert.to_json(),
                        key=alert.transaction.userId,
                        headers=[("alert-id", alert.alertId), ("alert-type", alert.alertType)],
                    )
                )
        deadline = time.monotonic() + self._ack_timeout
        for future in futures:
            future.result(timeout=max(0.0, deadline - time.monotonic()))
        return list(sent.values())

    def _record_decisions(self, evaluations: list[Evaluation]) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for evaluation in evaluations:
            pipe.set(
                keys.decision(evaluation.transaction.transactionId),
                evaluation.decision().to_json(),
                ex=self._decision_ttl,
            )
        stats_key = keys.stats_transactions(int(self._clock()))
        pipe.incrby(stats_key, len(evaluations))
        pipe.expire(stats_key, self._stats_ttl)
        pipe.execute()


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
        },
    )
