"""`tools/export_topic.py` on a real topic: every partition to the watermarks, then stop;
the export replays in a backtest exactly like the transactions that were published."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from confluent_kafka import Producer

from fraud_common.schemas import Transaction, TransactionRequest
from tests.conftest import TopicNames
from tools import backtest
from tools.export_topic import export

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


def _published(topics: TopicNames, bootstrap: str) -> list[Transaction]:
    """Twenty transactions over four users (spread over partitions by key), one of
    them large, published as the transaction-service publishes them."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    transactions = []
    for n in range(20):
        request = TransactionRequest(
            userId=f"export-u{n % 4}",
            amount=Decimal("15000") if n == 7 else Decimal("12.50"),
            currency="USD",
            location="Berlin",
            timestamp=T0 + timedelta(minutes=n),
        )
        transaction = Transaction.accept(
            request,
            received_at=T0 + timedelta(minutes=n, seconds=1),
            transaction_id=f"export-{n:02d}",
            max_event_age=timedelta(days=3650),
        )
        producer.produce(topics.transactions, transaction.to_json(), key=transaction.userId)
        transactions.append(transaction)
    assert producer.flush(20) == 0
    return transactions


def test_round_trip_through_a_real_topic(
    topics: TopicNames,
    kafka_bootstrap: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sent = _published(topics, kafka_bootstrap)
    out = io.BytesIO()
    assert export(out, kafka_bootstrap, topics.transactions, progress=False) == 20
    lines = out.getvalue().decode().splitlines()
    exported = sorted((Transaction.model_validate_json(line) for line in lines), key=str)
    assert sorted(sent, key=str) == exported  # every message once, field for field
    path = tmp_path / "recorded.jsonl"
    path.write_text("\n".join(lines) + "\n")

    rules = str(REPO / "fraud-detection-service" / "rules.yaml")
    assert backtest.main(["--rules", rules, "--input", str(path), "--json", "--quiet"]) == 0
    from_file = json.loads(capsys.readouterr().out)
    assert from_file["transactions"] == 20
    assert from_file["rules"]["large-amount"]["hits"] == 1
    args = ["--rules", rules, "--from-topic", topics.transactions, "--bootstrap", kafka_bootstrap]
    assert backtest.main([*args, "--json", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out) == from_file


def test_an_event_time_range(topics: TopicNames, kafka_bootstrap: str) -> None:
    _published(topics, kafka_bootstrap)
    out = io.BytesIO()
    since, until = T0 + timedelta(minutes=5), T0 + timedelta(minutes=10)
    assert export(out, kafka_bootstrap, topics.transactions, since=since, until=until) == 5
    ids = sorted(json.loads(line)["transactionId"] for line in out.getvalue().splitlines())
    assert ids == [f"export-{n:02d}" for n in range(5, 10)]


def test_an_empty_topic_exports_nothing_and_stops(topics: TopicNames, kafka_bootstrap: str) -> None:
    out = io.BytesIO()
    assert export(out, kafka_bootstrap, topics.transactions, progress=False) == 0
    assert out.getvalue() == b""
