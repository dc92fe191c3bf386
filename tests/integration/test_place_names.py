"""Place names as people write them never fool the location rule (issue 7, item 4).

Each sequence runs through the detector's real path for places: the gazetteer's
candidate readings, the state script on a real Redis choosing the one nearest the
user's previous place, and the whole rule set deciding. A qualified name followed by
the bare name (or by another spelling of the same place) raises nothing; real
impossible travel still does.
"""

from __future__ import annotations

import unicodedata
import uuid
from datetime import timedelta

import pytest
import redis

from fraud_common.money import load_fx_rates
from fraud_detection.evaluation import evaluate, place_of
from fraud_detection.geo import load_gazetteer
from fraud_detection.state import StateEntry, UserState
from tests.support.detector_factories import T0, transaction
from tests.support.rules_files import shipped_rules

pytestmark = pytest.mark.integration

RULES = shipped_rules()
LOCATION = "unusual_location_change_detected"
ZURICH_COMPOSED = unicodedata.normalize("NFC", "Zürich")
ZURICH_DECOMPOSED = unicodedata.normalize("NFD", "Zürich")


@pytest.fixture
def state(redis_url: str) -> UserState:
    return UserState(
        redis.Redis.from_url(redis_url, decode_responses=True),
        late_allowance_ms=300_000,
        max_entries=100,
        evaluation_ttl_seconds=3600,
        user_ttl_seconds=24 * 3600,
    )


def _alert_types(state: UserState, first: str, second: str, gap: timedelta) -> list[str]:
    """Two transactions of one user, ``gap`` apart, each in its own batch (as they would
    arrive); the alert types the second one raises."""
    gazetteer = load_gazetteer()
    user = f"places-{uuid.uuid4().hex[:8]}"
    raised: list[str] = []
    for at, name in ((T0, first), (T0 + gap, second)):
        txn = transaction(user=user, location=name, at=at)
        place = place_of(txn, gazetteer)
        (snapshot,) = state.record(
            [StateEntry(txn, place.coordinates, place.candidates)],
            evaluated_at_ms=1,
            lookback_ms=int(RULES.lookback.total_seconds() * 1000),
        )
        decision = evaluate(RULES, txn, place, snapshot, load_fx_rates())
        raised = [r.alertType for r in decision.reasons]
    return raised


@pytest.mark.parametrize(
    ("first", "second", "gap"),
    [
        ("Springfield, IL", "Springfield", timedelta(minutes=10)),
        ("Paris, TX", "Paris", timedelta(hours=5)),
        ("Toronto, ON", "Toronto", timedelta(minutes=10)),
        ("Sydney, NSW", "Sydney", timedelta(minutes=10)),
        ("Munich, Bavaria", "München", timedelta(minutes=10)),
        (ZURICH_DECOMPOSED, ZURICH_COMPOSED, timedelta(minutes=10)),
        ("  new   YORK ", "New York", timedelta(seconds=30)),
        ("Portland, OR", "Portland", timedelta(minutes=30)),
        ("London, Narnia", "London", timedelta(minutes=1)),  # unknown qualifier: bare name
    ],
)
def test_the_same_place_written_two_ways_raises_nothing(
    state: UserState, first: str, second: str, gap: timedelta
) -> None:
    assert _alert_types(state, first, second, gap) == []


@pytest.mark.parametrize(
    ("first", "second", "gap"),
    [
        ("New York", "Tokyo", timedelta(seconds=2)),
        ("Paris, TX", "Paris, FR", timedelta(hours=1)),
        ("Springfield, IL", "Springfield, MA", timedelta(minutes=10)),
        ("Toronto, ON", "Sydney, NSW", timedelta(hours=2)),
    ],
)
def test_impossible_travel_still_alerts(
    state: UserState, first: str, second: str, gap: timedelta
) -> None:
    assert _alert_types(state, first, second, gap) == [LOCATION]
