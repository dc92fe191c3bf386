"""The archive writer on real components: PostgreSQL started by the test on a free port,
the Tansu broker, the shared consumer loop.

- migrations apply once, a second run is a no-op, archivers starting together are safe;
- a redelivered batch (same rows again) changes nothing;
- transactions and decisions on their topics end up as rows, each once;
- PostgreSQL away (pg_ctl stop -m fast) makes the writer wait (the loop reports itself
  failing, nothing is committed) and catch up when it is back: nothing lost, nothing
  doubled; a whole second pass over the topics (a new group) adds nothing either.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest
from confluent_kafka import Producer

from archive_service import migrations
from archive_service.consumer import ArchiveHandler, ArchiveItem, Database
from fraud_common import archive
from fraud_common.failures import is_dependency_failure
from fraud_common.kafka.config import consumer_config, producer_config
from fraud_common.kafka.consumer_loop import ConsumerLoop
from fraud_common.kafka.producer import AckingProducer
from fraud_common.kafka.topics import TopicSpec, ensure_topics
from fraud_common.schemas import Decision, Reason, Transaction
from fraud_common.settings import dlq_topic
from tests.support import postgres
from tests.support.postgres import counts, create_database, query
from tools.local_services import wait_for
from tools.postgres_server import PostgresServer

pytestmark = pytest.mark.integration

postgres_server = postgres.postgres_server  # the fixtures, used by name
archive_database = postgres.archive_database


def make_transaction(user: str, amount: str = "12.50") -> Transaction:
    now = datetime.now(UTC)
    return Transaction(
        transactionId=str(uuid.uuid4()),
        userId=user,
        amount=Decimal(amount),
        currency="EUR",
        location="Paris",
        latitude=48.8566,
        longitude=2.3522,
        timestamp=now - timedelta(seconds=3),
        receivedAt=now,
        amountUsd=Decimal(amount) * Decimal("1.08"),
        fxRate=Decimal("1.08"),
        fxRateDate="2026-01-02",
    )


def make_decision(transaction: Transaction, status: str = "review") -> Decision:
    return Decision.model_validate(
        {
            "transactionId": transaction.transactionId,
            "status": status,
            "riskScore": 60,
            "reasons": [
                Reason(
                    ruleId="large-amount",
                    alertType="large_transaction_detected",
                    severity="high",
                    score=60,
                    details={"threshold": 10000},
                )
            ],
            "rulesVersion": "abc123",
            "evaluatedAt": datetime.now(UTC),
        }
    )


# -- migrations --------------------------------------------------------------------------


def test_migrations_apply_once_and_a_second_run_is_a_no_op(archive_database: str) -> None:
    with psycopg.connect(archive_database, autocommit=True) as connection:
        first = migrations.apply(connection)
        second = migrations.apply(connection)
    assert first == [m.name for m in migrations.available()]
    assert second == []
    applied = query(archive_database, "SELECT version FROM schema_migrations ORDER BY version")
    assert [row[0] for row in applied] == [m.version for m in migrations.available()]
    indexes = {row[0] for row in query(archive_database, "SELECT indexname FROM pg_indexes")}
    assert "transactions_user_event_time" in indexes


def test_archivers_starting_together_apply_the_migrations_once(archive_database: str) -> None:
    starters = 6
    barrier = threading.Barrier(starters)
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            with psycopg.connect(archive_database, autocommit=True) as connection:
                barrier.wait(10)
                results.append(migrations.apply(connection))
        except (psycopg.Error, threading.BrokenBarrierError) as exc:  # asserted below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(starters)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert sorted(len(r) for r in results) == [0] * (starters - 1) + [len(migrations.available())]
    assert query(archive_database, "SELECT count(*) FROM schema_migrations") == [
        (len(migrations.available()),)
    ]


# -- the batch writer --------------------------------------------------------------------


def test_a_redelivered_batch_changes_nothing(archive_database: str) -> None:
    transactions = [make_transaction(f"user-{i % 3}") for i in range(20)]
    batch = [archive.Archived(t, t.to_json()) for t in transactions] + [
        archive.Archived(make_decision(t), None, t.userId) for t in transactions[:15]
    ]
    with psycopg.connect(archive_database, autocommit=True) as connection:
        migrations.apply(connection)
        archive.write_batch(connection, batch)
        before = query(archive_database, "SELECT * FROM transactions ORDER BY transaction_id")
        archive.write_batch(connection, batch)  # redelivery
        archive.write_batch(connection, list(reversed(batch)) + batch)  # and duplicates in one
    assert counts(archive_database) == (20, 15)
    assert query(archive_database, "SELECT * FROM transactions ORDER BY transaction_id") == before
    row = query(
        archive_database,
        "SELECT amount, amount_usd, currency, user_id, event_time, record->>'amount' "
        "FROM transactions WHERE transaction_id = %s",
        (transactions[0].transactionId,),
    )[0]
    assert row[0] == Decimal("12.50") and isinstance(row[0], Decimal)
    assert row[1] == Decimal("12.50") * Decimal("1.08")
    assert row[2:5] == ("EUR", "user-0", transactions[0].timestamp)
    assert row[5] == "12.50"  # the record's JSON keeps the amount's text


def test_the_reader_returns_what_redis_would_hold(archive_database: str) -> None:
    transaction = make_transaction("reader-user")
    decision = make_decision(transaction)
    with psycopg.connect(archive_database, autocommit=True) as connection:
        migrations.apply(connection)
        archive.write_batch(
            connection,
            [
                archive.Archived(transaction, transaction.to_json()),
                archive.Archived(decision, decision.to_json(), transaction.userId),
            ],
        )
    reader = archive.ArchiveReader(archive_database)
    try:
        assert reader.read(transaction.transactionId) == (
            transaction.to_json(),
            decision.to_json(),
        )
        assert reader.read(str(uuid.uuid4())) is None
    finally:
        reader.close()


def test_postgres_errors_are_classified() -> None:
    """Away (retry the batch) versus a broken record (set it aside)."""
    assert is_dependency_failure(psycopg.OperationalError("connection refused"))
    assert is_dependency_failure(psycopg.errors.DeadlockDetected())
    assert not is_dependency_failure(psycopg.errors.UniqueViolation())
    assert not is_dependency_failure(psycopg.errors.InvalidTextRepresentation())


# -- the archiver's consumer loop --------------------------------------------------------


@dataclass
class Topics:
    transactions: str
    decisions: str


@pytest.fixture
def archive_topics(kafka_bootstrap: str) -> Topics:
    suffix = uuid.uuid4().hex[:10]
    names = Topics(f"transactions-{suffix}", f"decisions-{suffix}")
    ensure_topics(
        kafka_bootstrap,
        [
            TopicSpec(names.transactions, 4),
            TopicSpec(names.decisions, 4),
            TopicSpec(dlq_topic(names.transactions), 1),
            TopicSpec(dlq_topic(names.decisions), 1),
        ],
    )
    return names


class Archiver:
    """The archive-service's loop, as create_app builds it, in a thread of the test."""

    def __init__(self, bootstrap: str, topics: Topics, database_url: str) -> None:
        self.database = Database(database_url, connect_timeout=2)
        self.producer = AckingProducer(producer_config(bootstrap, client_id="archive-test"))
        self.loop: ConsumerLoop[ArchiveItem] = ConsumerLoop(
            consumer_config=consumer_config(
                bootstrap, group_id=f"archive-{uuid.uuid4().hex[:8]}", client_id="archive-test"
            ),
            topics=[topics.transactions, topics.decisions],
            handler=ArchiveHandler(
                self.database,
                transactions_topic=topics.transactions,
                decisions_topic=topics.decisions,
                max_event_age=timedelta(days=7),
            ),
            producer=self.producer,
            dlq_topic=dlq_topic,
            backoff_max=1.0,
        )
        self.thread = threading.Thread(target=self.loop.run, name="archiver", daemon=True)

    def __enter__(self) -> Archiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.stop()
        self.thread.join(30)
        self.database.close()
        self.producer.close()


Send = Callable[[Topics, list[Transaction]], None]


@pytest.fixture
def publish(kafka_bootstrap: str) -> Iterator[Send]:
    """Produces as the transaction-service and the detector do: each transaction on
    its topic and its decision on the decisions topic, key = userId."""
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 5})

    def send(topics: Topics, transactions: list[Transaction]) -> None:
        for transaction in transactions:
            key = transaction.userId.encode()
            producer.produce(topics.transactions, transaction.to_json().encode(), key)
            text = make_decision(transaction).to_json().encode()
            producer.produce(topics.decisions, text, key)
        assert producer.flush(15) == 0

    yield send
    producer.flush(5)


def archived_ids(url: str) -> tuple[set[str], set[str]]:
    rows_t = query(url, "SELECT transaction_id FROM transactions")
    rows_d = query(url, "SELECT transaction_id FROM decisions")
    return {r[0] for r in rows_t}, {r[0] for r in rows_d}


def test_postgres_away_makes_the_archiver_wait_and_catch_up(
    kafka_bootstrap: str,
    archive_topics: Topics,
    postgres_server: PostgresServer,
    publish: Send,
) -> None:
    url = create_database(postgres_server)
    send = publish
    first = [make_transaction(f"u{i % 7}") for i in range(200)]
    later = [make_transaction(f"u{i % 7}") for i in range(300)]
    with Archiver(kafka_bootstrap, archive_topics, url) as archiver:
        send(archive_topics, first)
        wait_for(lambda: counts(url) == (200, 200), timeout=60, what="the first 200 archived")

        postgres_server.stop()  # pg_ctl stop -m fast
        send(archive_topics, later)
        wait_for(
            lambda: archiver.loop.status.state == "failing" and archiver.loop.status.failures > 0,
            timeout=60,
            what="the archiver to notice PostgreSQL is away",
        )
        processed_while_away = archiver.loop.status.processed

        postgres_server.start()  # same port, same data
        wait_for(lambda: counts(url) == (500, 500), timeout=90, what="the archiver to catch up")
        wait_for(lambda: archiver.loop.status.state == "running", timeout=30, what="running again")
    assert processed_while_away == 400  # 200 records + 200 decisions; none while away
    transactions, decisions = archived_ids(url)
    expected = {t.transactionId for t in first + later}
    assert transactions == expected and decisions == expected

    # A second archiver of another group reads both topics from the start again: every
    # row is already there, nothing is doubled or changed.
    before = query(url, "SELECT transaction_id, record FROM transactions ORDER BY 1")
    with Archiver(kafka_bootstrap, archive_topics, url) as again:
        wait_for(lambda: again.loop.status.processed >= 1000, timeout=60, what="the redelivery")
    assert counts(url) == (500, 500)
    assert query(url, "SELECT transaction_id, record FROM transactions ORDER BY 1") == before


def test_an_unreadable_message_is_dead_lettered_and_the_rest_archived(
    kafka_bootstrap: str, archive_topics: Topics, archive_database: str, publish: Send
) -> None:
    send = publish
    good = [make_transaction("poison-neighbour") for _ in range(5)]
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    producer.produce(archive_topics.decisions, b'{"transactionId": "x"}', b"poison-neighbour")
    assert producer.flush(15) == 0
    with Archiver(kafka_bootstrap, archive_topics, archive_database) as archiver:
        send(archive_topics, good)
        wait_for(lambda: counts(archive_database) == (5, 5), timeout=60, what="the good ones")
        wait_for(lambda: archiver.loop.status.dead_lettered == 1, timeout=30, what="the DLQ")
