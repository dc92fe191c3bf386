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
from fraud_detection.evaluation import context_for, place_of
from fraud_detection.geo import Coordinates, load_gazetteer
from fraud_detection.rules import EvaluationContext, Place, location_change, rapid_transactions
from fraud_detection.rules.base import RuleFunction
from fraud_detection.state import Snapshot, StateEntry, UserState, epoch_ms
from tests.support.detector_factories import T0, transaction

pytestmark = pytest.mark.integration

LOOKBACK_MS = 30_000
RULES: dict[str, tuple[RuleFunction, object]] = {
    rapid_transactions.ALERT_TYPE: (rapid_transactions.evaluate, rapid_transactions.Params()),
    location_change.ALERT_TYPE: (location_change.evaluate, location_change.Params()),
}


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


def _contexts(
    state: UserState, txns: Sequence[Transaction], places: Sequence[Place], now_ms: int
) -> list[tuple[EvaluationContext, Snapshot]]:
    snapshots = state.record(
        [StateEntry(t, p.coordinates, p.candidates) for t, p in zip(txns, places, strict=True)],
        evaluated_at_ms=now_ms,
        lookback_ms=LOOKBACK_MS,
    )
    return [
        (context_for(t, p, s, load_fx_rates()), s)
        for t, p, s in zip(txns, places, snapshots, strict=True)
    ]


def _fired(context: EvaluationContext) -> list[str]:
    return [name for name, (rule, params) in RULES.items() if rule(context, params) is not None]


def _run(state: UserState, txns: Sequence[Transaction], now_ms: int = 1) -> list[list[str]]:
    """Record ``txns`` as one batch and evaluate them; the alert types of each."""
    gazetteer = load_gazetteer()
    places = [place_of(t, gazetteer) for t in txns]
    return [_fired(c) for c, _ in _contexts(state, txns, places, now_ms)]


RAPID = rapid_transactions.ALERT_TYPE
LOCATION = location_change.ALERT_TYPE


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
    assert _run(state, [new_york, tokyo]) == [[], [LOCATION]]
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
        keys.user_places("alice"),
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


def test_a_late_event_sees_the_later_ones_and_alerts_as_late(state: UserState) -> None:
    later = [transaction(at=T0 + timedelta(seconds=s)) for s in (11, 12, 13, 14, 15)]
    assert _run(state, later) == [[]] * 5
    late = transaction(at=T0 + timedelta(seconds=10))
    gazetteer = load_gazetteer()
    [(context, snapshot)] = _contexts(state, [late], [place_of(late, gazetteer)], 1)
    assert snapshot.recent_event_ms == (epoch_ms(late.timestamp),)
    assert snapshot.later_event_ms == tuple(epoch_ms(t.timestamp) for t in later)
    finding = rapid_transactions.evaluate(context, rapid_transactions.Params())
    assert finding is not None
    assert (finding.details["late"], finding.details["count"]) == (True, 6)
    # The replay returns the same window, so the same verdict.
    [(again, replayed)] = _contexts(state, [late], [place_of(late, gazetteer)], 2)
    assert replayed.replayed
    assert replayed.later_event_ms == snapshot.later_event_ms
    assert rapid_transactions.evaluate(again, rapid_transactions.Params()) == finding


def test_later_event_times_stop_short_of_the_lookback(state: UserState) -> None:
    offsets_ms = [10_000, 39_999, 40_000, 41_000]
    _run(state, [transaction(at=T0 + timedelta(milliseconds=ms)) for ms in offsets_ms])
    late = transaction(at=T0 + timedelta(seconds=10))
    snapshot = state.record([StateEntry(late, None)], evaluated_at_ms=1, lookback_ms=LOOKBACK_MS)
    t0 = epoch_ms(T0)
    assert [t - t0 for t in snapshot[0].recent_event_ms] == [10_000, 10_000]
    assert [t - t0 for t in snapshot[0].later_event_ms] == [39_999]


def test_an_event_later_than_the_allowance_is_judged_against_what_remains(
    state: UserState, redis_client: redis.Redis
) -> None:
    # Retention: 30 s lookback + 60 s allowance behind the newest event (at +100 s).
    kept = [transaction(at=T0 + timedelta(seconds=s)) for s in (5, 6, 7, 8, 100)]
    _run(state, kept)
    assert redis_client.zcard(keys.user_window("user-1")) == 1  # 5..8 are older than +10 s
    too_late = transaction(at=T0 + timedelta(seconds=9))
    [(context, snapshot)] = _contexts(state, [too_late], [place_of(too_late, load_gazetteer())], 1)
    assert snapshot.recent_event_ms == (epoch_ms(too_late.timestamp),)
    assert snapshot.later_event_ms == ()
    assert _fired(context) == []
    assert redis_client.zcard(keys.user_window("user-1")) == 1  # trimmed itself at once


FAR = Coordinates(-33.87, 151.21)  # Sydney
NEAR = Coordinates(40.73, -74.17)  # Newark, beside New York


def test_the_candidate_nearest_the_previous_place_is_chosen_and_kept(
    state: UserState, redis_client: redis.Redis
) -> None:
    new_york = transaction(location="New York", at=T0)
    _run(state, [new_york])
    ambiguous = transaction(location="Springfield", at=T0 + timedelta(seconds=60))
    place = Place("Springfield", FAR, (FAR, NEAR))  # the default reading is the far one
    [(context, snapshot)] = _contexts(state, [ambiguous], [place], 1)
    assert snapshot.coordinates == NEAR
    assert context.place.coordinates == NEAR
    assert _fired(context) == []  # Newark a minute after New York is no impossible trip
    last = json.loads(redis_client.get(keys.user_last_seen("user-1")) or "")
    assert (last["latitude"], last["longitude"]) == (NEAR.latitude, NEAR.longitude)
    # A replay keeps the choice, even with the candidates read differently now.
    [(again, replayed)] = _contexts(state, [ambiguous], [Place("Springfield", FAR, (FAR,))], 2)
    assert replayed.replayed
    assert (replayed.coordinates, again.place.coordinates) == (NEAR, NEAR)
    # The next transaction's previous place is the chosen reading.
    after = transaction(location="Tokyo", at=T0 + timedelta(seconds=120))
    [(_, following)] = _contexts(state, [after], [place_of(after, load_gazetteer())], 3)
    assert following.previous is not None
    assert following.previous.coordinates == NEAR


def test_the_far_candidate_wins_when_it_is_the_nearer(state: UserState) -> None:
    sydney = transaction(location="Sydney", latitude=-33.9, longitude=151.2, at=T0)
    _run(state, [sydney])
    ambiguous = transaction(location="Springfield", at=T0 + timedelta(seconds=60))
    [(context, snapshot)] = _contexts(
        state, [ambiguous], [Place("Springfield", NEAR, (NEAR, FAR))], 1
    )
    assert snapshot.coordinates == FAR
    assert context.place.coordinates == FAR


def test_without_a_previous_place_the_first_candidate_is_used(state: UserState) -> None:
    first = transaction(location="Springfield", at=T0)
    [(context, snapshot)] = _contexts(state, [first], [Place("Springfield", FAR, (FAR, NEAR))], 1)
    assert snapshot.coordinates == FAR
    assert context.place.coordinates == FAR
    # A previous place without coordinates is no help either.
    unknown = transaction(user="user-2", location="Xqzzy Nowhere", at=T0)
    _run(state, [unknown])
    second = transaction(user="user-2", location="Springfield", at=T0 + timedelta(seconds=1))
    [(_, snapshot)] = _contexts(state, [second], [Place("Springfield", FAR, (FAR, NEAR))], 1)
    assert snapshot.coordinates == FAR


def test_a_single_candidate_is_used_as_is(state: UserState, redis_client: redis.Redis) -> None:
    _run(state, [transaction(location="Tokyo", at=T0)])
    exact = Coordinates(40.712775897, -74.005973)
    explicit = transaction(
        location="Somewhere", latitude=exact.latitude, longitude=exact.longitude, at=T0
    )
    place = place_of(explicit, load_gazetteer())
    assert place.candidates == (exact,)
    [(context, snapshot)] = _contexts(state, [explicit], [place], 1)
    assert snapshot.coordinates == exact
    assert context.place.coordinates == exact
    last = json.loads(redis_client.get(keys.user_last_seen("user-1")) or "")
    assert Coordinates(last["latitude"], last["longitude"]) == exact


def test_an_unresolved_place_stays_without_coordinates(
    state: UserState, redis_client: redis.Redis
) -> None:
    _run(state, [transaction(location="New York", at=T0)])
    nowhere = transaction(location="Xqzzy Nowhere", at=T0 + timedelta(seconds=1))
    place = place_of(nowhere, load_gazetteer())
    assert place.candidates == ()
    [(context, snapshot)] = _contexts(state, [nowhere], [place], 1)
    assert snapshot.coordinates is None
    assert context.place.coordinates is None
    last = json.loads(redis_client.get(keys.user_last_seen("user-1")) or "")
    assert (last["location"], last["latitude"], last["longitude"]) == ("Xqzzy Nowhere", None, None)


def test_a_snapshot_stored_before_later_times_and_choices_still_reads(
    state: UserState, redis_client: redis.Redis
) -> None:
    txn = transaction(location="Tokyo", at=T0)
    old = {"recent": [epoch_ms(T0)], "previous": None, "evaluatedAtMs": 7}
    redis_client.set(keys.user_evaluation("user-1", txn.transactionId), json.dumps(old))
    place = place_of(txn, load_gazetteer())
    [(context, snapshot)] = _contexts(state, [txn], [place], 1)
    assert snapshot.replayed
    assert (snapshot.later_event_ms, snapshot.coordinates) == ((), None)
    assert context.place.coordinates == place.coordinates  # the first candidate, as then


def test_an_ambiguous_name_is_read_as_the_city_nearest_the_previous_place(
    state: UserState,
) -> None:
    # "Portland" reads as Portland, Oregon by default; after Boston it is Portland, Maine
    # (about 170 km: 30 minutes later is no impossible trip; Oregon would be).
    gazetteer = load_gazetteer()
    boston = transaction(location="Boston", at=T0)
    portland = transaction(location="Portland", at=T0 + timedelta(minutes=30))
    assert len(place_of(portland, gazetteer).candidates) > 1
    assert _run(state, [boston, portland]) == [[], []]
    [(context, _)] = _contexts(state, [portland], [place_of(portland, gazetteer)], 2)
    assert context.place.coordinates is not None
    assert context.place.coordinates.longitude > -75  # Maine, not Oregon
    # Another user, first seen in Seattle: the same name is Portland, Oregon.
    seattle = transaction(user="user-2", location="Seattle", at=T0)
    there = transaction(user="user-2", location="Portland", at=T0 + timedelta(minutes=30))
    assert _run(state, [seattle, there]) == [[], []]
    [(context, _)] = _contexts(state, [there], [place_of(there, gazetteer)], 2)
    assert context.place.coordinates == gazetteer.resolve("Portland")


def test_without_snapshots_the_state_is_the_same_and_none_is_stored(redis_url: str) -> None:
    """``evaluation_ttl_seconds=0`` (a backtest's): the same snapshots, places and all,
    from the same window, but no snapshot key; a rerun adds no second window entry."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    other = redis.Redis.from_url(redis_url.removesuffix("/0") + "/1", decode_responses=True)
    txns = [
        transaction(user="u-1", location=city, at=T0 + timedelta(seconds=n))
        for n, city in enumerate(["New York", "Tokyo", "New York", "Paris", "Tokyo"])
    ]
    entries = [StateEntry(t, place_of(t, load_gazetteer()).coordinates) for t in txns]

    def record(target: redis.Redis, ttl: int) -> list[Snapshot]:
        state = UserState(
            target,
            late_allowance_ms=60_000,
            max_entries=20,
            evaluation_ttl_seconds=ttl,
            user_ttl_seconds=3600,
        )
        now = epoch_ms(T0)
        return [
            *state.record(entries[:3], evaluated_at_ms=now, lookback_ms=LOOKBACK_MS,
                          places_lookback_ms=LOOKBACK_MS),
            *state.record(entries[3:], evaluated_at_ms=now, lookback_ms=LOOKBACK_MS,
                          places_lookback_ms=LOOKBACK_MS),
        ]  # fmt: skip

    assert record(other, 0) == record(client, 600)
    assert not any(other.exists(keys.user_evaluation("u-1", t.transactionId)) for t in txns)
    assert all(client.exists(keys.user_evaluation("u-1", t.transactionId)) for t in txns)
    again = UserState(
        other, late_allowance_ms=60_000, max_entries=20, evaluation_ttl_seconds=0,
        user_ttl_seconds=3600,
    ).record(entries[:1], evaluated_at_ms=epoch_ms(T0), lookback_ms=LOOKBACK_MS)  # fmt: skip
    assert not again[0].replayed
    assert other.zcard(keys.user_window("u-1")) == len(txns)


def test_a_batch_of_one_users_transactions_reads_and_writes_as_one_call_each(
    redis_url: str,
) -> None:
    """The script keeps what it read and wrote of a user's "last" for the user's next
    entries in the same call, and sets each key's TTL once: the same snapshots and the
    same stored state as recording every transaction in a call of its own (late events,
    a transaction twice, two users interleaved)."""
    at = [0, 5, 3, 40, 41, 5, 90, 2, 91]  # seconds: late ones among them
    users = ["u-a", "u-b", "u-a", "u-a", "u-b", "u-a", "u-a", "u-b", "u-a"]
    cities = ["New York", "Tokyo", "Paris", "New York", "Tokyo", "Tokyo", "Paris", "Paris", "Oslo"]
    entries = _entries(at, users, cities, repeat=3)

    def recorded(db: int, batches: list[list[StateEntry]]) -> tuple[list[Snapshot], dict]:
        client = redis.Redis.from_url(redis_url.removesuffix("/0") + f"/{db}")
        state = UserState(
            client, late_allowance_ms=60_000, max_entries=20, evaluation_ttl_seconds=600,
            user_ttl_seconds=3600,
        )  # fmt: skip
        return _recorded(client, state, batches)

    together = recorded(2, [entries])
    assert together == recorded(3, [[entry] for entry in entries])
    assert together[0][-1].replayed  # the repeat was recognised within the batch
    assert all(last and ttls for _, _, last, ttls in together[1].values())


def _entries(at: list[int], users: list[str], cities: list[str], repeat: int) -> list[StateEntry]:
    """A transaction ``at`` seconds after T0 by each user in each city, as the detector
    records it, and the one at index ``repeat`` once more at the end (in the same call)."""
    gazetteer = load_gazetteer()
    txns = [
        transaction(user=u, location=c, at=T0 + timedelta(seconds=s))
        for u, c, s in zip(users, cities, at, strict=True)
    ]
    txns.append(txns[repeat])
    return [StateEntry(t, place_of(t, gazetteer).coordinates) for t in txns]


def _recorded(
    client: redis.Redis,
    state: UserState,
    batches: list[list[StateEntry]],
    *,
    places_lookback_ms: int = 0,
) -> tuple[list[Snapshot], dict[str, tuple]]:
    """The snapshots of ``batches`` recorded one call each, and what is stored of users
    u-a and u-b: window and places with their scores, "last", and whether each of their
    keys that exists has a TTL."""
    now = epoch_ms(T0)
    snapshots = [
        snapshot
        for batch in batches
        for snapshot in state.record(
            batch,
            evaluated_at_ms=now,
            lookback_ms=LOOKBACK_MS,
            places_lookback_ms=places_lookback_ms,
        )
    ]
    stored = {}
    for user in ("u-a", "u-b"):
        window, places, last = (
            keys.user_window(user), keys.user_places(user), keys.user_last_seen(user)
        )  # fmt: skip
        stored[user] = (
            client.zrange(window, 0, -1, withscores=True),
            client.zrange(places, 0, -1, withscores=True),
            client.get(last),
            all(client.ttl(key) > 0 for key in (window, places, last) if client.exists(key)),
        )
    return snapshots, stored


@pytest.mark.parametrize("snapshot_ttl", [600, 0])
def test_caps_places_and_an_old_member_are_the_same_in_one_call_as_in_one_call_each(
    redis_url: str, snapshot_ttl: int
) -> None:
    """The script keeps each sorted set's size within a call to trim by rank only when it
    is over its cap, writes "last" once at the end, and takes the recorded check from the
    window range: with a cap of 3 entries and 2 places that every user goes past within
    one call, late events, a transaction twice and a transaction already in the window
    in its old form (the bare id), the snapshots and everything stored are the same as
    recording each transaction in a call of its own."""
    at = [0, 1, 2, 3, 1, 4, 5, 2, 6, 7, 8, 9]  # seconds: late ones among them
    users = ["u-a", "u-a", "u-b", "u-a", "u-b", "u-a", "u-b", "u-a", "u-a", "u-b", "u-a", "u-a"]
    cities = ["New York", "Tokyo", "Paris", "Oslo", "Tokyo", "Paris", "Oslo", "Lima", "Tokyo",
              "Paris", "New York", "Lima"]  # fmt: skip
    entries = _entries(at, users, cities, repeat=5)
    old_form = entries[11].transaction  # in the window already as its bare id

    def recorded(db: int, batches: list[list[StateEntry]]) -> tuple[list[Snapshot], dict]:
        client = redis.Redis.from_url(redis_url.removesuffix("/0") + f"/{db}")
        client.zadd(keys.user_window("u-a"), {old_form.transactionId: epoch_ms(old_form.timestamp)})
        state = UserState(
            client, late_allowance_ms=60_000, max_entries=3, evaluation_ttl_seconds=snapshot_ttl,
            user_ttl_seconds=3600, max_places=2,
        )  # fmt: skip
        return _recorded(client, state, batches, places_lookback_ms=LOOKBACK_MS)

    together = recorded(4, [entries])
    assert together == recorded(5, [[entry] for entry in entries])
    assert together[0][-1].replayed == (snapshot_ttl > 0)
    for window, places, _, ttls in together[1].values():
        assert len(window) == 3 and len(places) == 2 and ttls
    members = [m.decode() for m, _ in together[1]["u-a"][0]]
    assert old_form.transactionId in members
    assert not any(m.startswith(f"{old_form.transactionId}|") for m in members)
