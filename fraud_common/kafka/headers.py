"""Headers of a message on the ``transactions`` topic, the same from every producer of
it: the transaction-service when it accepts a transaction, the detector's reconciler
when it re-drives one; and of an alert on ``fraud-alerts``.

``traceparent`` (W3C, `fraud_common.tracing`) carries the trace of the POST that
accepted the transaction on to the detector and from there to the alert-service."""

from __future__ import annotations

from fraud_common.kafka.producer import Headers
from fraud_common.tracing import HEADER as TRACEPARENT

TRANSACTION_ID = "transaction-id"


def transaction_headers(transaction_id: str, traceparent: str | None = None) -> Headers:
    """Headers of a published transaction (a re-driven one has no trace to continue)."""
    headers: list[tuple[str, str | bytes]] = [(TRANSACTION_ID, transaction_id.encode())]
    if traceparent is not None:
        headers.append((TRACEPARENT, traceparent.encode()))
    return headers
