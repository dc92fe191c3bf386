"""What the window property tests share: a short window (so the brute-force reference is
cheap), hypothesis settings for examples that go through a real Redis, and a user state
whose retention and cap are far beyond what an example holds (so the reference need not
model trimming)."""

from __future__ import annotations

import redis
from hypothesis import HealthCheck, settings

from fraud_detection.state import UserState

WIDTH_MS = 1000  # window_seconds=1
SPAN_MS = 2500


def property_settings(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples,
        database=None,  # no example database in the working tree
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


def roomy_state(client: redis.Redis) -> UserState:
    return UserState(
        client,
        late_allowance_ms=60_000,
        max_entries=100,
        evaluation_ttl_seconds=600,
        user_ttl_seconds=600,
    )
