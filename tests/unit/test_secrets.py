"""Placeholder and short secrets are refused outside development, in every service."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from alert_service.settings import AlertServiceSettings
from fraud_common.secrets import MIN_SECRET_BYTES, weakness
from fraud_common.settings import ServiceSettings
from fraud_detection.settings import DetectorSettings
from transaction_service.settings import TransactionServiceSettings

STRONG = "0123456789abcdef0123456789abcdef"  # 32 bytes
BASE: dict[str, Any] = {"kafka_bootstrap_servers": "k:9092", "redis_url": "redis://r:6379/0"}


@pytest.fixture(autouse=True)
def production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("APP_ENV", raising=False)  # the default is production


@pytest.mark.parametrize(
    ("settings_class", "values", "variable"),
    [
        (ServiceSettings, {"redis_url": "redis://:change-me-redis-password@r:6379/0"}, "REDIS_URL"),
        (ServiceSettings, {"redis_url": "redis://:short@r:6379/0"}, "REDIS_URL"),
        (TransactionServiceSettings, {"api_keys": "change-me-api-key"}, "API_KEYS"),
        (TransactionServiceSettings, {"api_keys": f"{STRONG},tiny"}, "API_KEYS (entry 2)"),
        (DetectorSettings, {"admin_api_keys": "change-me-admin-api-key"}, "ADMIN_API_KEYS"),
        (
            AlertServiceSettings,
            {"webhook_urls": "http://h/x", "webhook_secret": "change-me-webhook-secret"},
            "WEBHOOK_SECRET",
        ),
        (AlertServiceSettings, {"api_keys": "x" * (MIN_SECRET_BYTES - 1)}, "API_KEYS"),
        (AlertServiceSettings, {"smtp_password": "s3cret"}, "SMTP_PASSWORD"),
        (
            AlertServiceSettings,
            {"webhook_urls": "http://h/x", "webhook_secrets": f"CHANGE_ME{STRONG}"},
            "WEBHOOK_SECRETS",
        ),
    ],
)
def test_a_placeholder_or_short_secret_is_refused_in_production(
    settings_class: type[ServiceSettings], values: dict[str, Any], variable: str
) -> None:
    with pytest.raises(ValidationError) as info:
        settings_class(**{**BASE, **values})
    message = str(info.value)
    assert variable in message
    for value in values.values():  # the message names the variable, never the secret
        for secret in str(value).split(","):
            if secret not in ("http://h/x", STRONG):
                assert secret not in message.replace(variable, "")
    settings_class(**{**BASE, **values, "app_env": "development"})  # accepted there


def test_app_env_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    values: dict[str, Any] = {**BASE, "api_keys": "change-me-api-key"}
    with pytest.raises(ValidationError, match="placeholder"):
        TransactionServiceSettings(**values)
    monkeypatch.setenv("APP_ENV", "development")
    assert TransactionServiceSettings(**values).app_env == "development"
    monkeypatch.setenv("APP_ENV", "staging")
    with pytest.raises(ValidationError, match="app_env"):
        TransactionServiceSettings(**values)


def test_strong_secrets_and_no_secrets_start_in_production() -> None:
    settings = AlertServiceSettings(
        **{**BASE, "redis_url": f"redis://:{STRONG}@r:6379/0"},
        api_keys=f"{STRONG},{STRONG[::-1]}",
        webhook_urls="http://h/x",
        webhook_secret=STRONG,
    )
    assert settings.app_env == "production"
    assert ServiceSettings(**BASE).app_env == "production"  # no password: nothing to check


@pytest.mark.parametrize(
    ("value", "weak"),
    [
        ("change-me-" + STRONG, True),
        ("ChangeMe" + STRONG, True),
        ("replace_me" + STRONG, True),
        (STRONG[:-1], True),
        ("é" * 16, False),  # 32 bytes in UTF-8
        (STRONG, False),
    ],
)
def test_weakness(value: str, weak: bool) -> None:
    assert (weakness(value) is not None) is weak
