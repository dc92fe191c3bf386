"""Amounts in the per-user state against a real Redis: exact micro-USD in the window's
members, old members without one, idempotency per transaction id, TTLs per call."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
import redis

from fraud_common import keys
from fraud_common.money import load_fx_rates
from fraud_detection.evaluation import context_for
from fraud_detection.rules import Place, amount_velocity, card_testing
from fraud_detection.state import StateEntry, UserState, epoch_ms
from tests.support.detector_factories import T0, transaction

pytestmark = pytest.mark.integration

LOOKBACK_MS = 60_000
VELOCITY = amount_velocity.Params(limit_usd=Decimal("2000000000000"), window_seconds=60)


@pytest.fixture
def state(redis_client: redis.Redis) -> UserState:
    return UserState(
        redis_client,
        late_allowance_ms=60_000,
        max_entries=20,
        evaluation_ttl_seconds=600,
        user_ttl_seconds=3600,
    )


def _members(redis_client: redis.Redis, user: str = "user-1") -> list[str]:
    return [str(m) for m in redis_client.zrange(keys.user_window(user), 0, -1)]


def test_members_carry_exact_micro_usd_past_2_to_the_53(
    state: UserState, redis_client: redis.Redis
) -> None:
    amounts = ["1000000000000", "999999999999.999999", "0.000001", "0.000001"]
    txns = [transaction(amount=a, at=T0 + timedelta(seconds=i)) for i, a in enumerate(amounts)]
    snapshots = state.record(
        [StateEntry(t, None) for t in txns], evaluated_at_ms=1, lookback_ms=LOOKBACK_MS
    )
    assert _members(redis_client) == [
        f"{txns[0].transactionId}|1000000000000000000",
        f"{txns[1].transactionId}|999999999999999999",
        f"{txns[2].transactionId}|1",
        f"{txns[3].transactionId}|1",
    ]
    last = snapshots[-1]
    assert last.recent_micros == (1, 1, 999_999_999_999_999_999, 10**18)  # newest first
    fx = load_fx_rates()
    fired = [
        amount_velocity.evaluate(context_for(t, Place("New York"), s, fx), VELOCITY)
        for t, s in zip(txns, snapshots, strict=True)
    ]
    # 2e12 exactly after the third: no alert; one micro-USD more: alert.
    assert [f is not None for f in fired] == [False, False, False, True]
    assert fired[3] is not None
    assert fired[3].details["total_usd"] == Decimal("2000000000000.000001")


def test_more_than_6_decimals_round_half_even_and_an_explicit_usd_value_wins(
    state: UserState, redis_client: redis.Redis
) -> None:
    half = transaction(amount="0.0000025", at=T0)
    eur = transaction(amount="10", currency="EUR", at=T0 + timedelta(seconds=1))
    explicit = transaction(amount="5", at=T0 + timedelta(seconds=2))
    state.record(
        [
            StateEntry(half, None),
            StateEntry(eur, None),
            StateEntry(explicit, None, amount_usd=Decimal("7.1234565")),
        ],
        evaluated_at_ms=1,
        lookback_ms=LOOKBACK_MS,
    )
    assert eur.amountUsd is not None
    eur_micros = int((eur.amountUsd * 10**6).to_integral_value())
    assert _members(redis_client) == [
        f"{half.transactionId}|2",
        f"{eur.transactionId}|{eur_micros}",
        f"{explicit.transactionId}|7123456",
    ]


def test_a_transaction_without_a_usd_value_and_old_members_count_as_unknown(
    state: UserState, redis_client: redis.Redis
) -> None:
    # An entry written before amounts were: the bare transaction id.
    redis_client.zadd(keys.user_window("user-1"), {"old-txn": epoch_ms(T0)})
    unstamped = transaction(at=T0 + timedelta(seconds=1)).model_copy(update={"amountUsd": None})
    small = transaction(amount="0.50", at=T0 + timedelta(seconds=2))
    snapshots = state.record(
        [StateEntry(unstamped, None), StateEntry(small, None)],
        evaluated_at_ms=1,
        lookback_ms=LOOKBACK_MS,
    )
    assert _members(redis_client) == [
        "old-txn",
        unstamped.transactionId,
        f"{small.transactionId}|500000",
    ]
    assert snapshots[1].window_entries_ms == (
        (epoch_ms(T0), None),
        (epoch_ms(unstamped.timestamp), None),
        (epoch_ms(small.timestamp), 500_000),
    )
    context = context_for(small, Place("New York"), snapshots[1], load_fx_rates())
    params = amount_velocity.Params(limit_usd=Decimal("0.49"), window_seconds=60)
    finding = amount_velocity.evaluate(context, params)
    assert finding is not None
    assert (finding.details["total_usd"], finding.details["count"]) == (Decimal("0.50"), 3)
    testing = card_testing.Params(max_amount_usd=Decimal("1"), min_count=2, window_seconds=60)
    assert card_testing.evaluate(context, testing) is None  # unknown amounts are not small


def test_a_rerun_after_the_snapshot_expired_adds_no_second_entry(
    state: UserState, redis_client: redis.Redis
) -> None:
    txn = transaction(amount="12.34", at=T0)
    same_time = transaction(amount="1", at=T0)
    state.record(
        [StateEntry(txn, None), StateEntry(same_time, None)], evaluated_at_ms=1, lookback_ms=1
    )
    redis_client.delete(keys.user_evaluation("user-1", txn.transactionId))
    [again] = state.record([StateEntry(txn, None)], evaluated_at_ms=2, lookback_ms=LOOKBACK_MS)
    assert not again.replayed
    assert sorted(_members(redis_client)) == sorted(
        [f"{txn.transactionId}|12340000", f"{same_time.transactionId}|1000000"]
    )
    assert set(again.recent_micros) == {1_000_000, 12_340_000}
    # Even with another amount now (a different rate, say), and for an old bare member.
    redis_client.delete(keys.user_evaluation("user-1", txn.transactionId))
    state.record(
        [StateEntry(txn, None, amount_usd=Decimal("99"))], evaluated_at_ms=3, lookback_ms=1
    )
    assert len(_members(redis_client)) == 2
    redis_client.zadd(keys.user_window("user-1"), {"bare-old": epoch_ms(T0) + 5})
    old = transaction(amount="3", at=T0 + timedelta(milliseconds=5), transaction_id="bare-old")
    [snapshot] = state.record([StateEntry(old, None)], evaluated_at_ms=4, lookback_ms=1)
    assert len(_members(redis_client)) == 3
    assert snapshot.recent_micros == (None,)


def test_without_a_lookback_a_rerun_still_adds_no_second_entry(
    state: UserState, redis_client: redis.Redis
) -> None:
    """Rules that look back nowhere (a lookback of 0: the window range is empty) still
    record each transaction once, in either of its member forms."""
    txn = transaction(amount="12.34", at=T0)
    state.record([StateEntry(txn, None)], evaluated_at_ms=1, lookback_ms=0)
    redis_client.delete(keys.user_evaluation("user-1", txn.transactionId))
    [again] = state.record([StateEntry(txn, None)], evaluated_at_ms=2, lookback_ms=0)
    assert not again.replayed and again.recent_event_ms == ()
    assert _members(redis_client) == [f"{txn.transactionId}|12340000"]
    redis_client.zadd(keys.user_window("user-1"), {"bare-old": epoch_ms(T0) + 5})
    old = transaction(amount="3", at=T0 + timedelta(milliseconds=5), transaction_id="bare-old")
    state.record([StateEntry(old, None)], evaluated_at_ms=3, lookback_ms=0)
    assert sorted(_members(redis_client)) == sorted([f"{txn.transactionId}|12340000", "bare-old"])


def test_a_replay_returns_the_stored_amounts(state: UserState) -> None:
    first = transaction(amount="10", at=T0 + timedelta(seconds=1))
    [snapshot] = state.record([StateEntry(first, None)], evaluated_at_ms=1, lookback_ms=LOOKBACK_MS)
    later = transaction(amount="20", at=T0)  # arrives after, earlier event time
    state.record([StateEntry(later, None)], evaluated_at_ms=2, lookback_ms=LOOKBACK_MS)
    [again] = state.record([StateEntry(first, None)], evaluated_at_ms=3, lookback_ms=LOOKBACK_MS)
    assert again.replayed
    assert (again.recent_micros, again.later_micros) == ((10_000_000,), ())
    assert again.window_entries_ms == snapshot.window_entries_ms


def test_a_snapshot_stored_before_amounts_reads_them_as_unknown(
    state: UserState, redis_client: redis.Redis
) -> None:
    txn = transaction(at=T0)
    old = {"recent": [epoch_ms(T0), epoch_ms(T0) - 5], "later": [], "evaluatedAtMs": 7}
    redis_client.set(keys.user_evaluation("user-1", txn.transactionId), json.dumps(old))
    [snapshot] = state.record([StateEntry(txn, None)], evaluated_at_ms=1, lookback_ms=1)
    assert snapshot.replayed
    assert snapshot.window_entries_ms == ((epoch_ms(T0) - 5, None), (epoch_ms(T0), None))
    assert snapshot.place is None


def test_user_ttl_per_call_is_floored_at_the_constructors(
    state: UserState, redis_client: redis.Redis
) -> None:
    user_keys = (keys.user_window("user-1"), keys.user_last_seen("user-1"))
    state.record(
        [StateEntry(transaction(at=T0), None)],
        evaluated_at_ms=1,
        lookback_ms=1,
        user_ttl_seconds=90 * 86400,
    )
    assert all(86400 * 89 < redis_client.ttl(k) <= 90 * 86400 for k in user_keys)
    state.record(
        [StateEntry(transaction(at=T0 + timedelta(seconds=1)), None)],
        evaluated_at_ms=2,
        lookback_ms=1,
        user_ttl_seconds=60,
    )
    assert all(3500 < redis_client.ttl(k) <= 3600 for k in user_keys)  # the floor
