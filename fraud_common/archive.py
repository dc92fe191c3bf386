"""The PostgreSQL archive of transaction records and decisions: its rows, written and read.

Redis keeps a transaction's record and decision only as long as detection and
idempotency need them (`TRANSACTION_TTL_SECONDS`, `DECISION_TTL_SECONDS`); the
archive-service keeps them for good in PostgreSQL (tables made by
``archive-service/migrations/``), and ``GET /api/v1/transactions/<id>`` reads here when
Redis no longer has the record. Writer and reader share this module so that the
columns are named in one place.

Writes are idempotent: a record and a decision are each written once (``ON CONFLICT
DO NOTHING``; both are immutable once made), so a redelivered batch changes nothing.
Rows of a batch are written in primary-key order, so two archivers never deadlock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from fraud_common.schemas import MAX_EVENT_AGE_CONTEXT, Decision, Transaction

_ANY_AGE = {MAX_EVENT_AGE_CONTEXT: timedelta(days=365 * 1000)}
"""An archived record was checked when it was accepted; its age is no reason to refuse it."""

INSERT_TRANSACTION = """
INSERT INTO transactions (
    transaction_id, user_id, event_time, received_at, amount, currency, amount_usd,
    fx_rate, fx_rate_date, location, latitude, longitude, record
) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb)
ON CONFLICT (transaction_id) DO NOTHING
"""

INSERT_DECISION = """
INSERT INTO decisions (
    transaction_id, user_id, status, risk_score, rules_version, decided_at, decision
) VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb)
ON CONFLICT (transaction_id) DO NOTHING
"""

SELECT_ONE = """
SELECT t.record, d.decision
FROM transactions t LEFT JOIN decisions d USING (transaction_id)
WHERE t.transaction_id = %s
"""


def transaction_row(transaction: Transaction, raw: str | None = None) -> tuple[Any, ...]:
    """The columns of ``transactions`` for one record; ``raw``: the message as it came
    (kept whole as JSONB, unknown fields included), else the record's own JSON."""
    return (
        transaction.transactionId,
        transaction.userId,
        transaction.timestamp,
        transaction.receivedAt,
        transaction.amount,
        transaction.currency,
        transaction.amountUsd,
        transaction.fxRate,
        transaction.fxRateDate,
        transaction.location,
        transaction.latitude,
        transaction.longitude,
        raw or transaction.to_json(),
    )


def decision_row(
    decision: Decision, user_id: str | None, raw: str | None = None
) -> tuple[Any, ...]:
    """The columns of ``decisions`` for one decision (``user_id``: its message's key;
    ``raw``: the message as it came, else the decision's own JSON)."""
    return (
        decision.transactionId,
        user_id,
        decision.status,
        decision.riskScore,
        decision.rulesVersion,
        decision.evaluatedAt,
        raw or decision.to_json(),
    )


@dataclass(frozen=True)
class Archived:
    """One message to archive: the validated model, and its text as it came."""

    item: Transaction | Decision
    raw: str | None = None
    user_id: str | None = None


def write_batch(connection: psycopg.Connection[Any], batch: Sequence[Archived]) -> None:
    """Upsert a batch in one database transaction: all of it is archived, or none."""
    transactions: dict[str, tuple[Any, ...]] = {}
    decisions: dict[str, tuple[Any, ...]] = {}
    for entry in batch:
        if isinstance(entry.item, Transaction):
            transactions[entry.item.transactionId] = transaction_row(entry.item, entry.raw)
        else:
            decisions[entry.item.transactionId] = decision_row(entry.item, entry.user_id, entry.raw)
    with connection.transaction(), connection.cursor() as cursor:
        if transactions:
            cursor.executemany(INSERT_TRANSACTION, [transactions[k] for k in sorted(transactions)])
        if decisions:
            cursor.executemany(INSERT_DECISION, [decisions[k] for k in sorted(decisions)])


class ArchiveReader:
    """Reads a record and its decision back, as the texts Redis would hold.

    The pool opens lazily (in the worker that first reads, after gunicorn's fork) and
    never blocks a request for long: ``timeout`` bounds the wait for a connection, and
    a database that is away raises `psycopg.OperationalError` (`PoolTimeout` is one).
    """

    def __init__(self, conninfo: str, *, timeout: float = 2.0, max_size: int = 4) -> None:
        self._timeout = timeout
        self._pool = ConnectionPool(
            conninfo,
            min_size=1,
            max_size=max_size,
            open=False,
            timeout=timeout,
            kwargs={"autocommit": True, "connect_timeout": max(1, int(timeout))},
            # A connection broken by a database restart is replaced before it is lent.
            check=ConnectionPool.check_connection,
        )
        self._opened = False

    def read(self, transaction_id: str) -> tuple[str, str | None] | None:
        """``(record JSON, decision JSON or None)``, or None when it was never archived."""
        if not self._opened:
            self._pool.open(wait=False)
            self._opened = True
        with self._pool.connection(timeout=self._timeout) as connection:
            row = connection.execute(SELECT_ONE, (transaction_id,)).fetchone()
        if row is None:
            return None
        record, decision = row
        # Through the models, so the texts have the field order and formats of Redis's.
        record_text = Transaction.model_validate(record, context=_ANY_AGE).to_json()
        decision_text = None if decision is None else Decision.model_validate(decision).to_json()
        return record_text, decision_text

    def close(self) -> None:
        self._pool.close()
