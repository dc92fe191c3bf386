"""The user's places in the real state (Lua on a real Redis) and the new-location rule on
what it returns: keys, history, late uses, replays, trimming, the cap, TTLs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import cast

import pytest
import redis

from fraud_common import keys
from fraud_common.jsonutil import isoformat_utc
from fraud_common.money import load_fx_rates
from fraud_common.schemas import Transaction
from fraud_detection.evaluation import context_for, place_of
from fraud_detection.geo import Coordinates, load_gazetteer
from fraud_detection.place_keys import coordinates_key
from fraud_detection.rules import Finding, Place, new_location
from fraud_detection.state import Snapshot, StateEntry, UserState, epoch_ms
from tests.support.detector_factories import T0, transaction

pytestmark = pytest.mark.integration

DAY = timedelta(days=1)
PARAMS = new_location.Params(lookback_days=30)
PLACES_LOOKBACK_MS = 30 * 86_400_000
ALLOWANCE_MS = 60_000


@pytest.fixture
def state(redis_client: redis.Redis) -> UserState:
    return UserState(
        redis_client,
        late_allowance_ms=ALLOWANCE_MS,
        max_entries=20,
        evaluation_ttl_seconds=600,
        user_ttl_seconds=3600,
        max_places=5,
    )


def _record(
    state: UserState, txns: Sequence[Transaction], places: Sequence[Place] | None = None
) -> list[tuple[Snapshot, Finding | None]]:
    """Record ``txns`` as one batch (places from the gazetteer unless given) and run the
    rule on each snapshot, as the detector does."""
    if places is None:
        gazetteer = load_gazetteer()
        places = [place_of(t, gazetteer) for t in txns]
    snapshots = state.record(
        [StateEntry(t, p.coordinates, p.candidates) for t, p in zip(txns, places, strict=True)],
        evaluated_at_ms=1,
        lookback_ms=1000,
        places_lookback_ms=PLACES_LOOKBACK_MS,
        user_ttl_seconds=60 * 86400,
    )
    fx = load_fx_rates()
    return [
        (s, new_location.evaluate(context_for(t, p, s, fx), PARAMS))
        for t, p, s in zip(txns, places, snapshots, strict=True)
    ]


def _key_of(name: str) -> str:
    coordinates = load_gazetteer().resolve(name)
    assert coordinates is not None
    return coordinates_key(coordinates)


def _fired(state: UserState, *txns: Transaction) -> list[bool]:
    return [finding is not None for _, finding in _record(state, txns)]


def _places(redis_client: redis.Redis, user: str = "user-1") -> dict[str, int]:
    places = redis_client.zrange(keys.user_places(user), 0, -1, withscores=True)
    return {m: int(s) for m, s in cast(list[tuple[str, float]], places)}


def test_first_ever_then_same_then_new_place(state: UserState, redis_client: redis.Redis) -> None:
    first = transaction(location="New York", at=T0)
    [(snapshot, finding)] = _record(state, [first])
    assert snapshot.place is not None
    assert (snapshot.place.has_history, snapshot.place.last_used_ms, finding) == (False, None, None)
    assert _places(redis_client) == {"geo:40.71,-74.01": epoch_ms(T0)}
    same = transaction(location="new york", at=T0 + 10 * DAY)
    new = transaction(location="Lisbon", at=T0 + 11 * DAY)
    [(again, no_alert), (_, alert)] = _record(state, [same, new])
    assert again.place is not None
    assert (again.place.has_history, again.place.last_used_ms) == (True, epoch_ms(T0))
    assert no_alert is None
    assert alert is not None
    assert alert.details == {"location": "Lisbon", "lookback_days": 30, "last_used": None}
    assert _places(redis_client)["geo:40.71,-74.01"] == epoch_ms(T0 + 10 * DAY)  # moved on


def test_a_place_last_used_longer_ago_than_the_lookback_alerts(state: UserState) -> None:
    home = T0
    assert _fired(state, transaction(location="Tokyo", at=home)) == [False]
    assert _fired(state, transaction(location="Lisbon", at=home + DAY)) == [True]
    # Exactly 30 days after Tokyo's last use is too long ago; a millisecond less is not.
    just_in = transaction(location="Tokyo", at=home + 30 * DAY - timedelta(milliseconds=1))
    [(_, finding)] = _record(state, [just_in])
    assert finding is None
    exactly = transaction(location="Lisbon", at=home + 31 * DAY)
    [(_, finding)] = _record(state, [exactly])
    assert finding is not None
    assert finding.details["last_used"] == isoformat_utc(home + DAY)


def test_explicit_coordinates_key_the_place_not_the_name(state: UserState) -> None:
    ny = load_gazetteer().resolve("New York")
    assert ny is not None
    here = transaction(location="Home", latitude=40.7128, longitude=-74.0060, at=T0)
    # The gazetteer's New York falls in the same 0.01 degree cell as these coordinates.
    assert (round(ny.latitude, 2), round(ny.longitude, 2)) == (40.71, -74.01)
    by_name = transaction(location="New York", at=T0 + DAY)
    renamed = transaction(location="Office", latitude=40.7149, longitude=-74.0051, at=T0 + 2 * DAY)
    next_cell = transaction(location="Home", latitude=40.7251, longitude=-74.0060, at=T0 + 3 * DAY)
    assert _fired(state, here, by_name, renamed, next_cell) == [False, False, False, True]


def test_unresolved_names_compare_normalised(state: UserState, redis_client: redis.Redis) -> None:
    first = transaction(location="Xqzzy  Nowhere", at=T0)
    same = transaction(location=" XQZZY nowhere ", at=T0 + DAY)
    other = transaction(location="Xqzzy Elsewhere", at=T0 + 2 * DAY)
    assert _fired(state, first, same, other) == [False, False, True]
    assert set(_places(redis_client)) == {"name:xqzzy nowhere", "name:xqzzy elsewhere"}


def test_the_key_follows_the_candidate_the_state_chose(
    state: UserState, redis_client: redis.Redis
) -> None:
    near, far = Coordinates(40.73, -74.17), Coordinates(-33.87, 151.21)
    _record(state, [transaction(location="New York", at=T0)])
    ambiguous = transaction(location="Springfield", at=T0 + DAY)
    [(snapshot, finding)] = _record(state, [ambiguous], [Place("Springfield", far, (far, near))])
    assert snapshot.place is not None
    assert snapshot.place.key == "geo:40.73,-74.17"
    assert finding is not None
    assert "geo:40.73,-74.17" in _places(redis_client)


def test_a_late_use_counts_and_does_not_move_the_last_use_back(
    state: UserState, redis_client: redis.Redis
) -> None:
    _record(state, [transaction(location="Tokyo", at=T0)])
    _record(state, [transaction(location="Lisbon", at=T0 + 40 * DAY)])  # arrives first
    # Lisbon 10 days before its later use: not new, though never used before then.
    late = transaction(location="Lisbon", at=T0 + 30 * DAY)
    [(snapshot, finding)] = _record(state, [late])
    assert snapshot.place is not None
    assert snapshot.place.last_used_ms == epoch_ms(T0 + 40 * DAY)
    assert finding is None
    assert _places(redis_client)[_key_of("Lisbon")] == epoch_ms(T0 + 40 * DAY)


def test_a_replay_returns_the_first_answer_and_changes_nothing(
    state: UserState, redis_client: redis.Redis
) -> None:
    _record(state, [transaction(location="Tokyo", at=T0)])
    lisbon = transaction(location="Lisbon", at=T0 + DAY)
    [(first, alert)] = _record(state, [lisbon])
    before = _places(redis_client)
    [(again, same_alert)] = _record(state, [lisbon])
    assert again.replayed
    assert again.place == first.place
    assert same_alert == alert is not None
    assert _places(redis_client) == before


def test_old_places_are_trimmed_and_the_set_is_capped(
    state: UserState, redis_client: redis.Redis
) -> None:
    _record(state, [transaction(location="Tokyo", at=T0)])
    _record(state, [transaction(location="Lisbon", at=T0 + 30 * DAY + timedelta(minutes=2))])
    assert set(_places(redis_client)) == {_key_of("Lisbon")}  # Tokyo: past lookback + allowance
    towns = ["Paris", "Berlin", "Madrid", "Rome", "Vienna", "Prague"]
    _record(state, [transaction(location=t, at=T0 + (31 + i) * DAY) for i, t in enumerate(towns)])
    kept = _places(redis_client)
    assert len(kept) == 5  # the cap: the least recently used went first
    assert min(kept.values()) == epoch_ms(T0 + 32 * DAY)


def test_places_expire_with_the_ttl_given_per_call(
    state: UserState, redis_client: redis.Redis
) -> None:
    _record(state, [transaction(location="Tokyo", at=T0)])
    for key in (keys.user_places("user-1"), keys.user_window("user-1")):
        assert 59 * 86400 < redis_client.ttl(key) <= 60 * 86400


def test_without_a_places_lookback_no_places_are_kept(
    state: UserState, redis_client: redis.Redis
) -> None:
    txns = [transaction(location=t, at=T0 + i * DAY) for i, t in enumerate(["Tokyo", "Lisbon"])]
    snapshots = state.record([StateEntry(t, None) for t in txns], evaluated_at_ms=1, lookback_ms=1)
    assert [s.place for s in snapshots] == [None, None]
    assert not redis_client.exists(keys.user_places("user-1"))
    context = context_for(txns[1], Place("Lisbon"), snapshots[1], load_fx_rates())
    assert new_location.evaluate(context, PARAMS) is None


def test_place_keys_share_the_users_cluster_slot() -> None:
    assert "{alice}" in keys.user_places("alice")
    assert keys.user_places("alice").split("}")[0] == keys.user_window("alice").split("}")[0]
