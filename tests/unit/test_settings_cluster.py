"""REDIS_CLUSTER: the switch is read from the environment, and a durability mode that
could confirm only one primary of the cluster is refused."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from fraud_common.settings import ServiceSettings


@pytest.fixture(autouse=True)
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REDIS_HOST", "REDIS_PORT", "REDIS_PASSWORD", "KAFKA_HOST", "REDIS_CLUSTER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("APP_ENV", "development")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "k:9092")
    monkeypatch.setenv("REDIS_URL", "redis://node-1:7000/0")
    monkeypatch.setenv("REDIS_DURABILITY", "none")


def test_off_by_default() -> None:
    assert ServiceSettings().redis_cluster is False


def test_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_CLUSTER", "true")
    assert ServiceSettings().redis_cluster is True


@pytest.mark.parametrize("mode", ["waitaof", "always"])
def test_a_durability_confirmed_on_one_node_is_refused_on_a_cluster(
    monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    monkeypatch.setenv("REDIS_CLUSTER", "true")
    monkeypatch.setenv("REDIS_DURABILITY", mode)
    with pytest.raises(ValidationError, match=f"REDIS_DURABILITY={mode} is not available"):
        ServiceSettings()
    monkeypatch.setenv("REDIS_CLUSTER", "false")
    assert ServiceSettings().redis_durability == mode
