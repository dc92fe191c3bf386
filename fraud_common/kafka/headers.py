"""Headers of a message on the ``transactions`` topic, the same from every producer of
it: the transaction-service when it accepts a transaction, the detector's reconciler
when it re-drives one."""

from __future__ import annotations

from fraud_common.kafka.producer import Headers

TRANSACTION_ID = "transaction-id"


def transaction_headers(transaction_id: str) -> Headers:
    """Headers of a published transaction (the place to add a trace id)."""
    return [(TRANSACTION_ID, transaction_id.encode())]
