"""Record retention in Redis follows the archive: 1 day with ARCHIVE_DATABASE_URL (never
below the Idempotency-Key's lifetime), 7 days without, an explicit value always wins;
the archive-service refuses to start without a database."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from archive_service.settings import ArchiveServiceSettings
from transaction_service.settings import (
    COLD_RECORD_TTL_SECONDS,
    HOT_RECORD_TTL_SECONDS,
    TransactionServiceSettings,
)

BASE = {"kafka_bootstrap_servers": "127.0.0.1:9092", "app_env": "development"}
URL = "postgresql://archive@127.0.0.1:5432/archive"


@pytest.fixture(autouse=True)
def _no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ARCHIVE_DATABASE_URL", "TRANSACTION_TTL_SECONDS", "IDEMPOTENCY_TTL_SECONDS"):
        monkeypatch.delenv(name, raising=False)


def settings(**values: object) -> TransactionServiceSettings:
    return TransactionServiceSettings(**BASE, redis_url="redis://127.0.0.1:6379/0", **values)


def test_without_an_archive_redis_keeps_records_seven_days() -> None:
    current = settings()
    assert current.archive_url is None
    assert current.transaction_ttl_seconds == COLD_RECORD_TTL_SECONDS == 7 * 24 * 3600
    assert settings(archive_database_url="").archive_url is None


def test_with_an_archive_redis_keeps_records_a_day() -> None:
    current = settings(archive_database_url=URL)
    assert current.archive_url == URL
    assert current.transaction_ttl_seconds == HOT_RECORD_TTL_SECONDS == 24 * 3600


def test_never_shorter_than_the_idempotency_records() -> None:
    current = settings(archive_database_url=URL, idempotency_ttl_seconds=3 * 24 * 3600)
    assert current.transaction_ttl_seconds == 3 * 24 * 3600


def test_an_explicit_ttl_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRANSACTION_TTL_SECONDS", "600")
    monkeypatch.setenv("ARCHIVE_DATABASE_URL", URL)
    current = TransactionServiceSettings(**BASE, redis_url="redis://127.0.0.1:6379/0")
    assert current.transaction_ttl_seconds == 600


def test_the_archiver_needs_a_database_and_no_redis() -> None:
    with pytest.raises(ValidationError, match="ARCHIVE_DATABASE_URL"):
        ArchiveServiceSettings(**BASE, archive_database_url="")
    current = ArchiveServiceSettings(**BASE, archive_database_url=URL)
    assert current.database_url == URL and current.redis_url is None
    assert current.consumer_group == "fraud-archive-group"
