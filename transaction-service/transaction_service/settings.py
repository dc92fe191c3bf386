"""Settings of the transaction-service (read from the environment, nowhere else)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, SecretStr, model_validator

from fraud_common.api_keys import KeyList
from fraud_common.settings import ServiceSettings

HOT_RECORD_TTL_SECONDS = 24 * 3600
"""A record's life in Redis when the archive keeps it: what detection and idempotency
need (docs/SCALING.md, "Redis keys and their TTLs"): the Idempotency-Key record (24 h),
the detector's replay snapshot (EVALUATION_TTL_SECONDS, 24 h) and the reconciler's
horizon (RECONCILE_AFTER_SECONDS, a minute) all end within it."""
COLD_RECORD_TTL_SECONDS = 7 * 24 * 3600
"""Without an archive, Redis is the only place GET can read a record from."""


class TransactionServiceSettings(ServiceSettings):
    port: int = Field(default=3000, ge=1, le=65535)

    # PostgreSQL archive of records and decisions (fraud_common.archive), read by GET
    # after Redis; empty: none.
    archive_database_url: SecretStr | None = None
    # Default: 1 day with the archive (at least IDEMPOTENCY_TTL_SECONDS), 7 days without.
    transaction_ttl_seconds: int = Field(default=COLD_RECORD_TTL_SECONDS, ge=60)
    idempotency_ttl_seconds: int = Field(default=24 * 3600, ge=60)
    # How long the marker of a request in flight lives: if the worker that holds it
    # crashes, the key is free again after this long.
    idempotency_in_flight_seconds: int = Field(default=30, ge=5)
    # The longest a request waits for the broker's acknowledgement. The producer's own
    # delivery timeout is set below it (see `delivery_timeout_ms`), so a delivery report,
    # success or failure, always arrives before the request gives up.
    publish_timeout_seconds: float = Field(default=4.5, ge=1.5, le=60)

    # Comma-separated; empty means the API is open.
    api_keys: KeyList = Field(default_factory=list)
    fx_rates_path: str | None = None

    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    max_batch_bytes: int = Field(default=1024 * 1024, ge=1024)
    max_batch_items: int = Field(default=1000, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _hot_retention_with_an_archive(cls, data: Any) -> Any:
        """TRANSACTION_TTL_SECONDS unset and an archive set: the record needs Redis only
        as long as idempotency and detection do (`HOT_RECORD_TTL_SECONDS`, or the
        Idempotency-Key's lifetime if longer); the archive keeps it after."""
        if not isinstance(data, dict):
            return data
        lowered = {str(k).lower(): v for k, v in data.items()}
        if lowered.get("archive_database_url") and "transaction_ttl_seconds" not in lowered:
            idempotency = int(lowered.get("idempotency_ttl_seconds") or 0)
            data["transaction_ttl_seconds"] = max(HOT_RECORD_TTL_SECONDS, idempotency)
        return data

    @property
    def archive_url(self) -> str | None:
        """``ARCHIVE_DATABASE_URL``, or None when the archive is off (unset or empty)."""
        url = self.archive_database_url
        return (url.get_secret_value() or None) if url is not None else None

    @property
    def delivery_timeout_ms(self) -> int:
        """librdkafka's ``message.timeout.ms``: half a second inside the request's wait."""
        return int(self.publish_timeout_seconds * 1000) - 500
