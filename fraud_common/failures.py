"""Which failures mean "a dependency is away" and which mean "this record cannot be done".

The two kinds are handled in opposite ways, so they are told apart in one place:

- **dependency away** (Redis, the broker or the archive's PostgreSQL unreachable,
  timing out, loading, read-only after a failover, out of memory): keep the work, back
  off, retry; nothing is skipped or committed past it, and it resumes by itself when the
  dependency returns.
- **record failure** (anything else: a value no code path expected, a bug in one rule,
  a script error on one user's data): retrying can never help; the record is set aside
  with its reason and the work of everybody else goes on.

Unknown exceptions count as record failures on purpose: treating a bug as an outage
would stop detection for every user until a deploy.
"""

from __future__ import annotations

import concurrent.futures

from confluent_kafka import KafkaError, KafkaException

from fraud_common.kafka.producer import DeliveryFailed
from fraud_common.redis_client import RETRYABLE_ERRORS

try:  # PostgreSQL (the archive): only the services that use it install psycopg.
    import psycopg

    # Connection lost, refused, server shutting down or starting (OperationalError; the
    # pool's PoolTimeout is one), and a deadlock or serialisation failure, which a
    # retry of the same work resolves (TransactionRollback: DeadlockDetected and others).
    _DATABASE_AWAY: tuple[type[BaseException], ...] = (
        psycopg.OperationalError,
        psycopg.errors.TransactionRollback,
    )
except ImportError:  # pragma: no cover - depends on the service's image
    _DATABASE_AWAY = ()

# Broker errors that say something about one message, not about the broker being away.
_RECORD_KAFKA_ERRORS = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.INVALID_RECORD,
        KafkaError.RECORD_LIST_TOO_LARGE,
    }
)


def is_dependency_failure(exc: BaseException) -> bool:
    """True when ``exc`` means Redis or the broker is away (retry later), False when the
    work itself cannot be done (set it aside)."""
    if isinstance(exc, RETRYABLE_ERRORS + _DATABASE_AWAY):
        return True
    if isinstance(exc, concurrent.futures.TimeoutError | TimeoutError):
        return True  # an acknowledgement that did not come in time
    if isinstance(exc, DeliveryFailed | KafkaException):
        error = exc.error if isinstance(exc, DeliveryFailed) else exc.args[0] if exc.args else None
        return not (isinstance(error, KafkaError) and error.code() in _RECORD_KAFKA_ERRORS)
    return False


def describe(exc: BaseException) -> str:
    """The one-line reason stored on a decision and a dead letter."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    reason = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return reason[:500]
