"""Settings read from the environment: the only module that reads it.

Every service builds one frozen settings object in its factory or `main()` and
passes plain values on. Each service extends `ServiceSettings` with its own fields
in its own package (``transaction_service.settings`` and so on).

Compatibility with the original three-service design: ``KAFKA_HOST`` is accepted
when ``KAFKA_BOOTSTRAP_SERVERS`` is not set, and ``REDIS_HOST``/``REDIS_PORT``/
``REDIS_PASSWORD`` when ``REDIS_URL`` is not set.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal
from urllib.parse import quote

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from fraud_common.secrets import refuse_weak_secrets

TRANSACTIONS_TOPIC = "transactions"
ALERTS_TOPIC = "fraud-alerts"
DETECTOR_GROUP = "fraud-detection-group"
ALERT_GROUP = "fraud-alert-group"
ARCHIVE_GROUP = "fraud-archive-group"


def dlq_topic(topic: str) -> str:
    """Dead-letter topic of ``topic`` (``transactions`` -> ``transactions.dlq``)."""
    return f"{topic}.dlq"


class ServiceSettings(BaseSettings):
    """What every service needs: where Kafka and Redis are, logging, topic names."""

    # hide_input_in_errors: a refused setting's error must not print the secrets around it.
    model_config = SettingsConfigDict(
        frozen=True, extra="ignore", case_sensitive=False, hide_input_in_errors=True
    )

    kafka_bootstrap_servers: str = Field(
        description="Kafka bootstrap servers, host:port[,host:port...]"
    )
    redis_url: SecretStr = Field(description="redis://[:password@]host:port/db")
    port: int = Field(default=5000, ge=1, le=65535)
    log_level: str = "INFO"
    log_format: Literal["json", "text"] = Field(
        default="json", description="json (one object a line, for containers) or text (for people)"
    )
    # production refuses placeholder and short secrets (fraud_common.secrets); development
    # (.env.example, the local stack, the tests) accepts them.
    app_env: Literal["production", "development"] = "production"

    transactions_topic: str = TRANSACTIONS_TOPIC
    alerts_topic: str = ALERTS_TOPIC
    transactions_partitions: int = Field(default=10, ge=1)
    alerts_partitions: int = Field(default=5, ge=1)
    topic_replication_factor: int = Field(default=1, ge=1)
    kafka_fetch_wait_max_ms: int = Field(
        default=10,
        ge=1,
        le=60000,
        description="longest a consumer's fetch waits for data: 10 suits Tansu, which holds a "
        "fetch for part of it even when data is there; on Apache Kafka, which answers as soon "
        "as data arrives, 500 (its default) spares the broker idle fetches at no latency cost",
    )
    # Extra librdkafka properties as JSON, e.g. '{"security.protocol": "SSL"}'.
    # Copied over the computed client config; never mutated.
    kafka_extra_config: dict[str, Any] = Field(default_factory=dict)

    redis_cluster: bool = Field(
        default=False,
        description="REDIS_URL names a node of a Redis Cluster: use the cluster client",
    )
    redis_socket_timeout: float = Field(default=2.0, gt=0)
    redis_durability: Literal["none", "waitaof", "always"] = Field(
        default="none",
        description="how far a write must have gone before it counts: none (Redis answered), "
        "waitaof (WAITAOF confirms the local fsync; Redis >= 7.2 with appendonly yes), always "
        "(the server must run appendfsync always); see fraud_common.durability",
    )
    max_event_age_seconds: int = Field(
        default=7 * 24 * 3600,
        ge=60,
        description="oldest event time accepted, relative to the time received: older is a "
        "400 on ingest and a dead letter on consume",
    )

    @property
    def max_event_age(self) -> timedelta:
        return timedelta(seconds=self.max_event_age_seconds)

    @model_validator(mode="before")
    @classmethod
    def _accept_legacy_names(cls, data: Any) -> Any:
        """Map the seed's KAFKA_HOST and REDIS_HOST/PORT/PASSWORD onto the new names."""
        if not isinstance(data, dict):
            return data
        lowered = {str(k).lower(): v for k, v in data.items()}
        if not lowered.get("kafka_bootstrap_servers") and lowered.get("kafka_host"):
            data["kafka_bootstrap_servers"] = lowered["kafka_host"]
        if not lowered.get("redis_url") and lowered.get("redis_host"):
            host = lowered["redis_host"]
            port = lowered.get("redis_port") or 6379
            password = lowered.get("redis_password")
            auth = f":{quote(str(password), safe='')}@" if password else ""
            data["redis_url"] = f"redis://{auth}{host}:{port}/0"
        return data

    @model_validator(mode="after")
    def _strong_secrets(self) -> ServiceSettings:
        refuse_weak_secrets(self, self.app_env)
        return self

    @model_validator(mode="after")
    def _durability_on_one_server(self) -> ServiceSettings:
        """A confirmation (WAITAOF, or the CONFIG GET of ``always``) reaches one node, but
        a cluster's writes go to every primary: refused rather than half-kept."""
        if self.redis_cluster and self.redis_durability != "none":
            raise ValueError(
                f"REDIS_DURABILITY={self.redis_durability} is not available with "
                "REDIS_CLUSTER=true (it would confirm one primary, not every primary that "
                "took a write); use REDIS_DURABILITY=none on a cluster"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings
    ):
        # Legacy names are not fields, so pydantic-settings would drop them before the
        # validator above sees them; a source that adds them back keeps them visible.
        return (init_settings, env_settings, _LegacyEnvSource(settings_cls), file_secret_settings)

    @property
    def transactions_dlq(self) -> str:
        return dlq_topic(self.transactions_topic)

    @property
    def alerts_dlq(self) -> str:
        return dlq_topic(self.alerts_topic)


class _LegacyEnvSource:
    """Settings source exposing KAFKA_HOST and REDIS_HOST/PORT/PASSWORD when set."""

    _NAMES = ("kafka_host", "redis_host", "redis_port", "redis_password")

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        self.settings_cls = settings_cls

    def __call__(self) -> dict[str, Any]:
        import os

        return {
            name: os.environ[name.upper()] for name in self._NAMES if os.environ.get(name.upper())
        }
