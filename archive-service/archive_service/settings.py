"""Settings of the archive-service (read from the environment, nowhere else)."""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator

from fraud_common.kafka.topics import DECISIONS_TOPIC
from fraud_common.settings import ARCHIVE_GROUP, ServiceSettings


class ArchiveServiceSettings(ServiceSettings):
    port: int = Field(default=5000, ge=1, le=65535)
    # The archiver touches no Redis: REDIS_URL may be left unset.
    redis_url: SecretStr | None = Field(  # type: ignore[assignment]
        default=None, description="unused by the archive-service"
    )
    consumer_group: str = ARCHIVE_GROUP
    decisions_topic: str = Field(
        default=DECISIONS_TOPIC, min_length=1, description="the detector's decisions topic"
    )
    archive_database_url: SecretStr = Field(
        description="postgresql://user:password@host:port/db of the archive"
    )
    consumer_batch_size: int = Field(default=500, ge=1, le=10000)
    # Nobody waits on the archive by the millisecond: a longer fetch wait than the
    # services' spares the broker most of this consumer's idle fetches, also on Tansu.
    kafka_fetch_wait_max_ms: int = Field(default=250, ge=1, le=60000)
    consumer_poll_timeout_seconds: float = Field(default=0.25, gt=0)
    consumer_stall_seconds: float = Field(default=30.0, gt=0)
    archive_connect_timeout_seconds: float = Field(default=5.0, gt=0)

    @model_validator(mode="after")
    def _needs_a_database(self) -> ArchiveServiceSettings:
        if not self.archive_database_url.get_secret_value():
            raise ValueError("ARCHIVE_DATABASE_URL is required by the archive-service")
        return self

    @property
    def database_url(self) -> str:
        return self.archive_database_url.get_secret_value()
