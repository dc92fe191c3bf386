"""Settings come from the environment, with the seed's variable names still accepted."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from fraud_common.settings import ServiceSettings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "KAFKA_BOOTSTRAP_SERVERS",
        "KAFKA_HOST",
        "REDIS_URL",
        "REDIS_HOST",
        "REDIS_PORT",
        "REDIS_PASSWORD",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("APP_ENV", "development")  # short passwords below; see test_secrets


def test_new_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "k1:9092,k2:9092")
    monkeypatch.setenv("REDIS_URL", "redis://:pw@r:6380/2")
    settings = ServiceSettings()
    assert settings.kafka_bootstrap_servers == "k1:9092,k2:9092"
    assert settings.redis_url.get_secret_value() == "redis://:pw@r:6380/2"
    assert "pw" not in repr(settings)


def test_legacy_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_HOST", "kafka:9092")
    monkeypatch.setenv("REDIS_HOST", "redis")
    monkeypatch.setenv("REDIS_PORT", "6390")
    monkeypatch.setenv("REDIS_PASSWORD", "p@ss/word")
    settings = ServiceSettings()
    assert settings.kafka_bootstrap_servers == "kafka:9092"
    assert settings.redis_url.get_secret_value() == "redis://:p%40ss%2Fword@redis:6390/0"


def test_new_names_win_over_legacy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_HOST", "old:9092")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "new:9092")
    monkeypatch.setenv("REDIS_HOST", "old")
    monkeypatch.setenv("REDIS_URL", "redis://new:6379/0")
    settings = ServiceSettings()
    assert settings.kafka_bootstrap_servers == "new:9092"
    assert settings.redis_url.get_secret_value() == "redis://new:6379/0"


def test_required_without_defaults() -> None:
    with pytest.raises(ValidationError) as info:
        ServiceSettings()
    missing = {e["loc"][0] for e in info.value.errors()}
    assert missing == {"kafka_bootstrap_servers", "redis_url"}


def test_frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = ServiceSettings(kafka_bootstrap_servers="k:1", redis_url="redis://r")
    with pytest.raises(ValidationError):
        settings.port = 1
    assert settings.transactions_dlq == "transactions.dlq"
    assert settings.alerts_dlq == "fraud-alerts.dlq"


def test_detector_reads_its_numbers_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from fraud_detection.settings import DetectorSettings

    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "k:9092")
    monkeypatch.setenv("REDIS_URL", "redis://r:6379/0")
    monkeypatch.setenv("GAZETTEER_MIN_POPULATION", "5000")
    monkeypatch.setenv("RULES_FILE", "/etc/fraud/rules.yaml")
    settings = DetectorSettings()
    assert settings.gazetteer_min_population == 5000
    assert str(settings.rules_file) == "/etc/fraud/rules.yaml"
    monkeypatch.setenv("GAZETTEER_MIN_POPULATION", "2000")
    with pytest.raises(ValidationError, match="500, 1000, 5000 or 15000"):
        DetectorSettings()


def test_fetch_wait_reaches_the_consumer_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fetch wait is Tansu's 10 ms unless set (KAFKA_FETCH_WAIT_MAX_MS, 500 in compose
    for Apache Kafka); the archive, which nobody waits on by the millisecond, waits longer."""
    from archive_service.settings import ArchiveServiceSettings
    from fraud_common.kafka.config import consumer_config

    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "k:9092")
    monkeypatch.setenv("REDIS_URL", "redis://r:6379/0")
    monkeypatch.setenv("ARCHIVE_DATABASE_URL", "postgresql://a:b@h:5432/d")
    assert ServiceSettings().kafka_fetch_wait_max_ms == 10
    assert ArchiveServiceSettings().kafka_fetch_wait_max_ms == 250
    monkeypatch.setenv("KAFKA_FETCH_WAIT_MAX_MS", "500")
    settings = ServiceSettings()
    config = consumer_config(
        settings.kafka_bootstrap_servers,
        group_id="g",
        client_id="c",
        fetch_wait_max_ms=settings.kafka_fetch_wait_max_ms,
    )
    assert config["fetch.wait.max.ms"] == 500
    # the prefetch is bounded (librdkafka's 64 MB default put the detector over 150 MB)
    assert config["queued.max.messages.kbytes"] <= 4096
    assert ArchiveServiceSettings().kafka_fetch_wait_max_ms == 500
    monkeypatch.setenv("KAFKA_FETCH_WAIT_MAX_MS", "0")
    with pytest.raises(ValidationError, match="kafka_fetch_wait_max_ms"):
        ServiceSettings()
