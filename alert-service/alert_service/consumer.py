"""What the alert-service's consumer loop does with a batch of ``fraud-alerts`` messages.

decode: a message must be an `Alert` (else it is dead-lettered by the loop).
handle: store the whole batch in one round trip (idempotent per alertId), put every
alert into its user's open case (idempotent too: a redelivery joins once) and log one
readable line per alert seen for the first time. A dependency failure makes the loop
retry the batch without committing it; any other failure makes it find the failing
alerts and dead-letter them, while the others are stored.
reject: nothing to record beyond the dead letter the loop sends.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from confluent_kafka import Message
from pydantic import ValidationError

from alert_service.cases.store import CaseStore
from alert_service.store import AlertStore
from fraud_common import metrics
from fraud_common.kafka.consumer_loop import InvalidMessage, Record, Rejected
from fraud_common.schemas import MAX_EVENT_AGE_CONTEXT, Alert

log = logging.getLogger("alert_service.alerts")


class AlertHandler:
    def __init__(
        self,
        store: AlertStore,
        cases: CaseStore,
        *,
        max_event_age: timedelta,
        make_durable: Callable[[], None] = lambda: None,
    ) -> None:
        self._store = store
        self._cases = cases
        self._make_durable = make_durable
        self._decode_context = {MAX_EVENT_AGE_CONTEXT: max_event_age}

    def decode(self, message: Message) -> Alert:
        value = message.value()
        if not value:
            raise InvalidMessage("empty message")
        try:
            return Alert.model_validate_json(value, context=self._decode_context)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'message'}: {e['msg']}"
                for e in exc.errors(include_url=False)[:10]
            )
            raise InvalidMessage(f"not a valid alert: {problems}") from exc

    def handle(self, records: Sequence[Record[Alert]]) -> None:
        alerts = [r.value for r in records]
        stored_now = self._store.store(alerts)
        # Every alert, new or redelivered: a crash after the store and before the cases
        # is finished by the redelivery (the case step is idempotent per alert).
        self._cases.add_alerts(alerts)
        self._make_durable()  # REDIS_DURABILITY: on disk before the offsets are stored
        for stored in stored_now:
            if stored.new:
                metrics.ALERTS_STORED.labels(stored.alert.alertType).inc()
                log.info(describe(stored.alert), extra=_fields(stored.alert))
            else:
                log.debug(
                    "alert already stored",
                    extra={"alert_id": stored.alert.alertId, "trace_id": stored.alert.traceId},
                )

    def reject(self, rejected: Rejected) -> None:
        """The dead letter (sent by the loop) is the whole record of a rejected alert."""


def describe(alert: Alert) -> str:
    """One line for people: ``ALERT large_transaction_detected [high] user u1: 25000.00 USD in
    Tokyo (threshold=10000, amount_usd=25000.00)``."""
    txn = alert.transaction
    amount = format(txn.amount, "f")
    details = ", ".join(f"{k}={_short(v)}" for k, v in alert.details.items())
    text = f"ALERT {alert.alertType} [{alert.severity}] user {txn.userId}: "
    text += f"{amount} {txn.currency} in {txn.location}"
    return f"{text} ({details})" if details else text


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _fields(alert: Alert) -> dict[str, Any]:
    txn = alert.transaction
    return {
        "alert_id": alert.alertId,
        "alert_type": alert.alertType,
        "severity": alert.severity,
        "user_id": txn.userId,
        "transaction_id": txn.transactionId,
        "amount": format(txn.amount, "f"),
        "currency": txn.currency,
        "location": txn.location,
        "trace_id": alert.traceId,
    }
