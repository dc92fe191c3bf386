"""Property tests of the rapid rule through the real state (Lua on a real Redis): random
event times (many equal, ms resolution) for a few users, arriving in order, reversed or
shuffled, in random batches, with replays; every verdict is checked against a
brute-force count written here from the contract's definition.

The Redis server is flushed per test, not per example, so each example uses its own
user ids.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
import redis
from hypothesis import assume, event, example, given
from hypothesis import strategies as st

from fraud_common.money import load_fx_rates
from fraud_common.schemas import Transaction
from fraud_detection.evaluation import context_for
from fraud_detection.geo import Coordinates, haversine_km
from fraud_detection.rules import Finding, Place, rapid_transactions
from fraud_detection.state import Snapshot, StateEntry, UserState, epoch_ms
from tests.support.detector_factories import T0, transaction
from tests.support.window_properties import SPAN_MS, WIDTH_MS, property_settings, roomy_state

pytestmark = pytest.mark.integration

PROPERTY = property_settings(max_examples=150)


@pytest.fixture
def state(redis_client: redis.Redis) -> UserState:
    return roomy_state(redis_client)


@dataclass(frozen=True)
class Expected:
    fires: bool
    late: bool
    count_ending_here: int
    best_count: int


def count_in(times: list[int], start: int, end: int) -> int:
    """How many of ``times`` lie in the half-open window ``(start, end]``."""
    return sum(1 for x in times if start < x <= end)


def reference(times: list[int], t: int, max_count: int) -> Expected:
    """Straight from the definition: every window ``(s, s + W]`` that contains ``t``.

    Times are whole milliseconds and W is too, so a real ``s`` gives the same members as
    ``floor(s)``: the windows containing ``t`` are exactly those with integer ``s`` in
    ``[t - W, t - 1]``.
    """
    counts = [count_in(times, s, s + WIDTH_MS) for s in range(t - WIDTH_MS, t)]
    ending_here = counts[0]  # s = t - W: the window ending at t
    best = max(counts)
    fires = best > max_count
    return Expected(fires, fires and ending_here <= max_count, ending_here, best)


def check_finding(
    finding: Finding | None, expected: Expected, times: list[int], t: int, max_count: int
) -> None:
    assert (finding is not None) == expected.fires, (times, t, max_count)
    if finding is None:
        return
    details = finding.details
    assert details["late"] is expected.late
    assert details["threshold_count"] == max_count
    assert details["time_window"] == details["threshold_time"] == WIDTH_MS // 1000
    end = _ms(details["window_end"])
    assert end - WIDTH_MS < t <= end  # the window described contains this transaction
    assert details["count"] == count_in(times, end - WIDTH_MS, end)
    members = [x for x in times if end - WIDTH_MS < x <= end]
    assert _ms(details["first_in_window"]) == min(members)
    if expected.late:
        assert details["count"] == expected.best_count
    else:
        assert (end, details["count"]) == (t, expected.count_ending_here)


def _ms(text: str) -> int:
    return epoch_ms(datetime.fromisoformat(text))


offsets = st.one_of(
    st.integers(0, SPAN_MS),
    st.sampled_from([0, 1, 2, 998, 999, 1000, 1001, 1999, 2000, 2001]),
)
NEAR_A_WINDOW = [0, 0, 1, -1, 999, -999, 1000, -1000, 1001, -1001, 500]


@st.composite
def event_times(draw: st.DrawFn) -> list[int]:
    """One user's event times (ms): many equal, many a window's width apart (give or
    take a millisecond), some anywhere."""
    base = draw(offsets)
    pool = [base + d for d in draw(st.lists(st.sampled_from(NEAR_A_WINDOW), min_size=1))]
    anywhere_or_pooled = st.one_of(offsets, st.sampled_from([p for p in pool if p >= 0] or [0]))
    return draw(st.lists(anywhere_or_pooled, min_size=1, max_size=12))


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[tuple[int, int]], str, list[list[int]], int]:
    """(user, offset ms) per transaction, the arrival order's kind, the batches (indexes
    into the transactions, a repeated index being a replay) and max_count."""
    events = [
        (user, offset) for user in range(draw(st.integers(1, 3))) for offset in draw(event_times())
    ]
    kind = draw(st.sampled_from(["in order", "reversed", "shuffled"]))
    by_time = sorted(range(len(events)), key=lambda i: events[i][1])
    if kind == "in order":
        order = by_time
    elif kind == "reversed":
        order = by_time[::-1]
    else:
        order = draw(st.permutations(range(len(events))))
    arrivals: list[int] = []
    for i in order:
        arrivals.append(i)
        if draw(st.integers(0, 4)) == 0:  # now and then, replay one that already arrived
            arrivals.append(draw(st.sampled_from(arrivals)))
    batches: list[list[int]] = []
    while len(arrivals) > sum(map(len, batches)):
        start = sum(map(len, batches))
        batches.append(arrivals[start : start + draw(st.integers(1, 8))])
    return events, kind, batches, draw(st.integers(1, 4))


@PROPERTY
@given(scenario=scenarios())
# Two a whole window after a late one share no window with it.
@example(scenario=([(0, 0), (0, 1000), (0, 1000)], "reversed", [[2, 1, 0]], 1))
def test_rapid_verdicts_match_the_definition_in_any_arrival_order(
    state: UserState, scenario: tuple[list[tuple[int, int]], str, list[list[int]], int]
) -> None:
    events, kind, batches, max_count = scenario
    params = rapid_transactions.Params(max_count=max_count, window_seconds=WIDTH_MS // 1000)
    run = uuid.uuid4().hex[:12]
    txns = [
        transaction(user=f"prop-{run}-{user}", at=T0 + timedelta(milliseconds=offset))
        for user, offset in events
    ]
    place = Place("New York")
    fx_rates = load_fx_rates()
    arrived: dict[str, list[int]] = {}
    first: dict[str, tuple[Snapshot, Finding | None]] = {}
    for number, batch in enumerate(batches):
        snapshots = state.record(
            [StateEntry(txns[i], None) for i in batch],
            evaluated_at_ms=1_000 + number,
            lookback_ms=WIDTH_MS,
        )
        for i, snapshot in zip(batch, snapshots, strict=True):
            txn = txns[i]
            finding = rapid_transactions.evaluate(
                context_for(txn, place, snapshot, fx_rates), params
            )
            if txn.transactionId in first:
                stored, verdict = first[txn.transactionId]
                assert snapshot.replayed
                assert snapshot._replace(replayed=False) == stored
                assert finding == verdict
                event("replay")
                continue
            assert not snapshot.replayed
            t = epoch_ms(txn.timestamp)
            times = arrived.setdefault(txn.userId, [])
            times.append(t)
            expected = reference(times, t, max_count)
            check_finding(finding, expected, times, t, max_count)
            event("late alert" if expected.late else "alert" if expected.fires else "no alert")
            if kind == "in order":
                assert not expected.late  # in order, the rule is the original one
            first[txn.transactionId] = (snapshot, finding)


coordinates = st.builds(
    Coordinates,
    st.floats(-90, 90, allow_nan=False),
    st.floats(-180, 180, allow_nan=False),
)


@PROPERTY
@given(
    previous=coordinates,
    candidates=st.lists(coordinates, min_size=1, max_size=8, unique=True),
)
def test_the_chosen_candidate_is_the_nearest_to_the_previous_place(
    state: UserState, previous: Coordinates, candidates: list[Coordinates]
) -> None:
    distances = sorted(haversine_km(previous, c) for c in candidates)
    # A near tie may go either way in floating point; the rule is about clear winners.
    assume(len(distances) == 1 or distances[1] - distances[0] > 1e-3)
    user = f"near-{uuid.uuid4().hex[:12]}"
    before = transaction(user=user, latitude=previous.latitude, longitude=previous.longitude)
    now: Transaction = transaction(user=user, location="Springfield", at=T0 + timedelta(hours=1))
    [_, snapshot] = state.record(
        [StateEntry(before, None, (previous,)), StateEntry(now, None, tuple(candidates))],
        evaluated_at_ms=1,
        lookback_ms=WIDTH_MS,
    )
    nearest = min(candidates, key=lambda c: haversine_km(previous, c))
    assert snapshot.coordinates == nearest
    [again] = state.record(
        [StateEntry(now, None, tuple(reversed(candidates)))], evaluated_at_ms=2, lookback_ms=1
    )
    assert (again.replayed, again.coordinates) == (True, nearest)
