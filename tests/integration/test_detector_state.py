"""The per-user state script against a real Redis: windows, replays, trimming, TTLs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import timedelta
from typing import cast

import pytest
import redis

from fraud_common import keys
from fraud_common.money import load_fx_rates
from fraud_common.schemas import Transaction
from fraud_detection.evaluation import evaluate, place_of
from fraud_detection.geo import load_gazetteer
from fraud_detection.rules import RuleSet
from fraud_detection.settings import DetectorSettings
from fraud_detection.state import StateEntry, UserState, epoch_ms
from tests.support.detector_factories import T0, transaction

pytestmark = pytest.mark.integration

SETTINGS = DetectorSettings(kafka_bootstrap_servers="localhost:9", redis_url="redis://localhost:1")
RULES = RuleSet.from_settings(SETTINGS)
LOOKBACK_MS = 30_000


@pytest.fixture
def state(redis_url: str) -> UserState:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    return UserState(
        client,
        late_allowance_ms=60_000,
        max_entries=20,
        evaluation_ttl_seconds=600,
        user_ttl_seconds=3600,
    )


def _run(state: UserState, txns: Sequence[Transaction], now_ms: int = 1) -> list[list[str]]:
    """Record ``txns`` as one batch and evaluate them; the alert types of each."""
    gazetteer = load_gazetteer()
    places = [place_of(t, gazetteer) for t in txns]
    snapshots = state.record(
        [StateEntry(t, p.coordinates) for t, p in zip(txns, places, strict=True)],
        evaluated_at_ms=now_ms,
        lookback_ms=LOOKBACK_MS,
    )
    return [
        [h.alert_type for h in evaluate(RULES, t, p, s, load_fx_rates()).hits]
        for t, p, s in zip(txns, places, snapshots, strict=True)
    ]


RAPID = "multiple_rapid_transactions_detected"


def test_sixth_seventh_and_twentieth_within_30s_alert(state: UserState) -> None:
    txns = [transaction(at=T0 + timedelta(seconds=i)) for i in range(20)]
    fired = _run(state, txns)
    assert [i + 1 for i, types in enumerate(fired) if RAPID in types] == list(range(6, 21))


def test_gap_of_31s_restarts_the_count_one_batch_per_transaction(state: UserState) -> None:
    offsets = [0, 1, 2, 3, 4, 5, 36, 37, 38, 39, 40, 41]
    fired = [_run(state, [transaction(at=T0 + timedelta(seconds=s))])[0] for s in offsets]
    assert [i + 1 for i, types in enumerate(fired) if RAPID in types] == [6, 12]


def test_a_replay_returns_the_first_snapshot_and_counts_once(
    state: UserState, redis_client: redis.Redis
) -> None:
    txns = [transaction(at=T0 + timedelta(seconds=i)) for i in range(5)]
    assert _run(state, txns, now_ms=111) == [[]] * 5
    # The fifth again, in a later batch and a batch of its own: same answer, no new entry.
    again = state.record([StateEntry(txns[4], None)], evaluated_at_ms=999, lookback_ms=LOOKBACK_MS)
    assert again[0].replayed
    assert again[0].evaluated_at_ms == 111
    assert len(again[0].recent_event_ms) == 5
    assert redis_client.zcard(keys.user_window("user-1")) == 5
    # The sixth distinct one is the sixth, not the seventh.
    sixth = transaction(at=T0 + timedelta(seconds=5))
    assert _run(state, [sixth]) == [[RAPID]]
    # Twice in one batch: the second run sees the first's snapshot.
    seventh = transaction(at=T0 + timedelta(seconds=6))
    first, second = state.record(
        [StateEntry(seventh, None), StateEntry(seventh, None)],
        evaluated_at_ms=5,
        lookback_ms=LOOKBACK_MS,
    )
    assert (first.replayed, second.replayed) == (False, True)
    assert first.recent_event_ms == second.recent_event_ms
    assert len(first.recent_event_ms) == 7


def test_previous_place_is_the_latest_by_event_time(state: UserState) -> None:
    new_york = transaction(location="New York", at=T0)
    tokyo = transaction(location="Tokyo", at=T0 + timedelta(seconds=2))
    assert _run(state, [new_york, tokyo]) == [[], ["unusual_location_change_detected"]]
    # A late event (before Tokyo) does not become the user's last place.
    late = transaction(location="Tokyo", at=T0 + timedelta(seconds=1))
    _run(state, [late])
    after = transaction(location="Tokyo", at=T0 + timedelta(seconds=3))
    snapshot = state.record([StateEntry(after, None)], evaluated_at_ms=1, lookback_ms=1)[0]
    assert snapshot.previous is not None
    assert snapshot.previous.transaction_id == tokyo.transactionId
    assert snapshot.previous.coordinates == load_gazetteer().resolve("Tokyo")


def test_window_is_trimmed_and_every_key_expires(
    state: UserState, redis_client: redis.Redis
) -> None:
    # 30 transactions 10 s apart: retention is 30 s window + 60 s allowance, cap 20.
    txns = [transaction(at=T0 + timedelta(seconds=10 * i)) for i in range(30)]
    _run(state, txns)
    window = cast(
        list[tuple[str, float]],
        redis_client.zrange(keys.user_window("user-1"), 0, -1, withscores=True),
    )
    newest = epoch_ms(txns[-1].timestamp)
    assert all(score >= newest - 90_000 for _, score in window)
    assert len(window) == 10
    for key in (keys.user_window("user-1"), keys.user_last_seen("user-1")):
        assert 0 < redis_client.ttl(key) <= 3600
    evaluation = keys.user_evaluation("user-1", txns[0].transactionId)
    assert 0 < redis_client.ttl(evaluation) <= 600
    assert json.loads(redis_client.get(evaluation) or "{}")["evaluatedAtMs"] == 1


def test_window_never_holds_more_than_the_cap(state: UserState, redis_client: redis.Redis) -> None:
    txns = [transaction(at=T0 + timedelta(milliseconds=i)) for i in range(50)]
    _run(state, txns)
    assert redis_client.zcard(keys.user_window("user-1")) == 20


def test_state_keys_share_the_users_cluster_slot(redis_client: redis.Redis) -> None:
    txn = transaction(user="alice")
    names = [
        keys.user_window("alice"),
        keys.user_last_seen("alice"),
        keys.user_evaluation("alice", txn.transactionId),
    ]
    assert all("{alice}" in name for name in names)


def test_script_is_reloaded_after_redis_forgets_it(
    state: UserState, redis_client: redis.Redis
) -> None:
    _run(state, [transaction(at=T0)])
    redis_client.script_flush()
    assert _run(state, [transaction(at=T0 + timedelta(seconds=1))]) == [[]]
    assert redis_client.zcard(keys.user_window("user-1")) == 2


def test_an_unreadable_last_place_counts_as_none(
    state: UserState, redis_client: redis.Redis
) -> None:
    redis_client.set(keys.user_last_seen("user-1"), "not json")
    txn = transaction(location="Tokyo")
    snapshot = state.record([StateEntry(txn, None)], evaluated_at_ms=1, lookback_ms=1)[0]
    assert snapshot.previous is None
    assert json.loads(redis_client.get(keys.user_last_seen("user-1")) or "")["location"] == "Tokyo"
