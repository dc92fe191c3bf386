"""Settings of the transaction-service (read from the environment, nowhere else)."""

from __future__ import annotations

from pydantic import Field

from fraud_common.api_keys import KeyList
from fraud_common.settings import ServiceSettings


class TransactionServiceSettings(ServiceSettings):
    port: int = Field(default=3000, ge=1, le=65535)

    transaction_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=60)
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

    @property
    def delivery_timeout_ms(self) -> int:
        """librdkafka's ``message.timeout.ms``: half a second inside the request's wait."""
        return int(self.publish_timeout_seconds * 1000) - 500
