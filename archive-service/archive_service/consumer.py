"""What the archive-service's consumer loop does with a batch of ``transactions`` and
``decisions`` messages.

decode: a message of ``transactions`` must be a `Transaction`, one of ``decisions`` a
``Decision`` (else the loop dead-letters it to ``<topic>.dlq``).
handle: the whole batch in one PostgreSQL transaction (`fraud_common.archive.write_batch`,
idempotent per transactionId), committed before the loop stores the offsets. PostgreSQL
away (connection refused or lost: `psycopg.OperationalError`) is a dependency failure
(`fraud_common.failures`): the loop keeps the batch, backs off and retries, and the
connection is made again on the next attempt, so the archive catches up by itself.
reject: nothing beyond the dead letter.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import psycopg
from confluent_kafka import Message
from pydantic import BaseModel, ValidationError

from archive_service import migrations
from fraud_common import archive
from fraud_common.kafka.consumer_loop import InvalidMessage, Record, Rejected
from fraud_common.schemas import MAX_EVENT_AGE_CONTEXT, Decision, Transaction

log = logging.getLogger(__name__)

ArchiveItem = Transaction | Decision


class Database:
    """The archiver's one connection, made (and the migrations applied) on first use and
    made again after it broke; used only by the loop's thread."""

    def __init__(self, url: str, *, connect_timeout: float) -> None:
        self._url = url
        self._connect_timeout = connect_timeout
        self._connection: psycopg.Connection[Any] | None = None

    def connection(self) -> psycopg.Connection[Any]:
        if self._connection is not None and not self._connection.closed:
            return self._connection
        self._connection = None
        connection = psycopg.connect(
            self._url, autocommit=True, connect_timeout=max(1, round(self._connect_timeout))
        )
        try:
            migrations.apply(connection)
        except BaseException:
            connection.close()
            raise
        self._connection = connection
        return connection

    def discard(self) -> None:
        """Drop a connection that failed: the next batch connects again."""
        if self._connection is not None:
            self._connection.close()
        self._connection = None

    def ping(self) -> bool:
        """A fresh short connection (never the loop's): is the database answering?"""
        try:
            with psycopg.connect(self._url, connect_timeout=2) as probe:
                probe.execute("SELECT 1")
        except psycopg.Error:
            return False
        return True

    def close(self) -> None:
        self.discard()


class ArchiveHandler:
    def __init__(
        self,
        database: Database,
        *,
        transactions_topic: str,
        decisions_topic: str,
        max_event_age: timedelta,
    ) -> None:
        self._database = database
        self._transactions_topic = transactions_topic
        self._decisions_topic = decisions_topic
        self._decode_context = {MAX_EVENT_AGE_CONTEXT: max_event_age}

    def decode(self, message: Message) -> ArchiveItem:
        value = message.value()
        if not value:
            raise InvalidMessage("empty message")
        model: type[BaseModel] = (
            Decision if message.topic() == self._decisions_topic else Transaction
        )
        try:
            item = model.model_validate_json(value, context=self._decode_context)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'message'}: {e['msg']}"
                for e in exc.errors(include_url=False)[:10]
            )
            raise InvalidMessage(f"not a valid {model.__name__.lower()}: {problems}") from exc
        assert isinstance(item, Transaction | Decision)
        return item

    def handle(self, records: Sequence[Record[ArchiveItem]]) -> None:
        batch = [
            archive.Archived(r.value, r.raw.decode("utf-8", errors="replace") or None, r.key)
            for r in records
        ]
        try:
            archive.write_batch(self._database.connection(), batch)
        except psycopg.OperationalError:
            self._database.discard()  # broken or refused: connect again on the retry
            raise
        log.debug("archived a batch", extra={"messages": len(batch)})

    def reject(self, rejected: Rejected) -> None:
        """The dead letter (sent by the loop) is the whole record of a rejected message."""
