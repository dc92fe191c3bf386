"""Settings of the alert-service (read from the environment, nowhere else)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from fraud_common.api_keys import KeyList
from fraud_common.settings import ALERT_GROUP, ServiceSettings


def _split_list(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class AlertServiceSettings(ServiceSettings):
    port: int = Field(default=5000, ge=1, le=65535)
    consumer_group: str = ALERT_GROUP
    recent_alerts_max: int = Field(default=10000, ge=1, description="overall recent list bound")
    user_alerts_max: int = Field(default=1000, ge=1, description="per-user recent list bound")
    alert_ttl_seconds: int = Field(default=30 * 24 * 3600, ge=60)
    stream_max_len: int = Field(default=100000, ge=100, description="alerts stream MAXLEN ~")
    sse_heartbeat_seconds: float = Field(default=15.0, gt=0)
    # Open streams per worker process; beyond it a subscriber gets 503 + Retry-After.
    # gunicorn.conf.py sizes the thread pool above it, so the API always has threads.
    sse_max_subscribers: int = Field(default=50, ge=1, le=1000)
    # X-API-Key for /api/v1/alerts*, /api/v1/stats and the case routes (empty: open);
    # /health, /metrics open.
    api_keys: KeyList = Field(default_factory=list)
    consumer_stall_seconds: float = Field(default=30.0, gt=0)
    # Alert copies (and history lines) a case keeps; its alertCount counts every alert.
    case_alerts_kept: int = Field(default=1000, ge=1)

    # Notifications (webhooks, email) and their noise control.
    webhook_urls: Annotated[list[str], NoDecode] = Field(default_factory=list)
    webhook_secret: SecretStr | None = None
    # One secret per URL of WEBHOOK_URLS, in the same order (WEBHOOK_SECRET: the default).
    webhook_secrets: KeyList = Field(default_factory=list)
    webhook_timeout_seconds: float = Field(default=5.0, gt=0)
    webhook_max_attempts: int = Field(default=6, ge=1)
    webhook_backoff_initial_seconds: float = Field(default=1.0, gt=0)
    webhook_backoff_max_seconds: float = Field(default=60.0, gt=0)
    smtp_host: str | None = None
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_timeout_seconds: float = Field(default=10.0, gt=0)
    email_from: str = "fraud-alerts@localhost"
    email_to: Annotated[list[str], NoDecode] = Field(default_factory=list)
    alert_cooldown_seconds: int = Field(default=60, ge=0)

    _lists = field_validator("webhook_urls", "email_to", mode="before")(
        classmethod(lambda cls, v: _split_list(v))
    )

    @model_validator(mode="after")
    def _secret_with_webhooks(self) -> AlertServiceSettings:
        if self.webhook_secrets and len(self.webhook_secrets) != len(self.webhook_urls):
            raise ValueError("WEBHOOK_SECRETS needs exactly one secret per URL of WEBHOOK_URLS")
        if self.webhook_urls and self.webhook_secret is None and not self.webhook_secrets:
            raise ValueError("WEBHOOK_SECRET or WEBHOOK_SECRETS is required with WEBHOOK_URLS")
        if self.email_to and not self.smtp_host:
            raise ValueError("SMTP_HOST is required when EMAIL_TO is set")
        return self

    def webhook_targets(self) -> list[tuple[str, str]]:
        """``(url, secret)`` per distinct webhook URL: its own secret, else WEBHOOK_SECRET."""
        targets: dict[str, str] = {}
        for position, url in enumerate(self.webhook_urls):
            if self.webhook_secrets:
                secret = self.webhook_secrets[position]
            elif self.webhook_secret is not None:
                secret = self.webhook_secret
            else:
                continue
            targets.setdefault(url, secret.get_secret_value())
        return list(targets.items())
