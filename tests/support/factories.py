"""Alerts as the detector publishes them, for the alert-service's tests (store, API,
stream, notifications, dashboard)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from fraud_common.schemas import Alert, Transaction, alert_id


def make_alert(
    user_id: str,
    alert_type: str = "large_transaction_detected",
    *,
    amount: str = "25000.00",
    currency: str = "USD",
    location: str = "Tokyo",
    severity: str = "high",
    details: dict[str, Any] | None = None,
    transaction_id: str | None = None,
) -> Alert:
    """One alert for one new transaction (or ``transaction_id``), timestamped now."""
    now = datetime.now(UTC)
    txn = Transaction(
        transactionId=transaction_id or str(uuid.uuid4()),
        userId=user_id,
        amount=Decimal(amount),
        currency=currency,
        location=location,
        timestamp=now,
        receivedAt=now,
    )
    return Alert(
        alertId=alert_id(txn.transactionId, alert_type),
        alertType=alert_type,
        severity=severity,
        transaction=txn,
        timestamp=now,
        details={"threshold": 10000, "amount_usd": amount} if details is None else details,
        message=f"{amount} {currency} is above 10000 USD",
    )
