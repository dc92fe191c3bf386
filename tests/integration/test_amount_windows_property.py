"""Property tests of the amount rules (amount velocity, card testing) through the real
state (Lua on a real Redis) and the real rules: random event times (many equal, ms
resolution) and random decimal amounts (many exactly at the limit, at ``max_amount_usd``,
or summing to the limit; some with more than 6 decimals) for a few users, arriving in
order, reversed or shuffled, in random batches, with replays. Every verdict is checked
against a brute-force reference written here from the contract's definition, with its
own exact arithmetic (Decimal, amounts rounded half-even to the micro-USD as documented).

The Redis server is flushed per test, not per example, so each example uses its own
user ids.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import ROUND_HALF_EVEN, Decimal, localcontext

import pytest
import redis
from hypothesis import event, example, given
from hypothesis import strategies as st

from fraud_common import keys
from fraud_common.money import load_fx_rates
from fraud_common.schemas import Transaction
from fraud_detection.evaluation import context_for
from fraud_detection.rules import Finding, Place, amount_velocity, card_testing
from fraud_detection.state import Snapshot, StateEntry, UserState, epoch_ms
from tests.support.detector_factories import T0, transaction
from tests.support.window_properties import SPAN_MS, WIDTH_MS, property_settings, roomy_state

pytestmark = pytest.mark.integration

MICRO = Decimal("0.000001")
PROPERTY = property_settings(max_examples=120)


@pytest.fixture
def state(redis_client: redis.Redis) -> UserState:
    return roomy_state(redis_client)


def as_stored(amount: Decimal) -> Decimal:
    """The amount the rules are documented to see: rounded half-even to the micro-USD."""
    with localcontext() as exact:
        exact.prec = 80
        return amount.quantize(MICRO, rounding=ROUND_HALF_EVEN)


@dataclass(frozen=True)
class Window:
    total: Decimal
    count: int
    small: int


@dataclass(frozen=True)
class Windows:
    """Every window ``(s, s + W]`` (integer ms ``s``) containing ``t``; the first ends at t.

    Times are whole milliseconds and W is too, so a real ``s`` gives the same members as
    ``floor(s)``: the windows containing ``t`` are exactly those with integer ``s`` in
    ``[t - W, t - 1]``."""

    ending_here: Window
    all: list[Window]
    amounts: list[Decimal]
    """The amounts of every transaction in any of them."""


def windows(arrived: list[tuple[int, Decimal]], t: int, max_amount: Decimal) -> Windows:
    found = []
    amounts: set[Decimal] = set()
    with localcontext() as exact:
        exact.prec = 80
        for s in range(t - WIDTH_MS, t):
            members = [a for x, a in arrived if s < x <= s + WIDTH_MS]
            amounts.update(members)
            found.append(
                Window(
                    total=sum(members, Decimal(0)),
                    count=len(members),
                    small=sum(1 for a in members if a <= max_amount),
                )
            )
    return Windows(found[0], found, sorted(amounts))


@st.composite
def event_times(draw: st.DrawFn) -> list[int]:
    """One user's event times (ms): many equal, many a window's width apart (give or
    take a millisecond), some anywhere."""
    base = draw(st.integers(0, SPAN_MS))
    near = st.sampled_from([0, 0, 1, -1, 999, -999, 1000, -1000, 1001, 500])
    pool = [max(0, base + d) for d in draw(st.lists(near, min_size=1, max_size=6))]
    return draw(
        st.lists(st.one_of(st.integers(0, SPAN_MS), st.sampled_from(pool)), min_size=1, max_size=10)
    )


@dataclass(frozen=True)
class Scenario:
    events: list[tuple[int, int, Decimal]]  # (user, offset ms, USD amount)
    kind: str
    batches: list[list[int]]  # indexes into events; a repeated index is a replay
    limit: Decimal
    max_amount: Decimal
    min_count: int


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    limit = draw(st.sampled_from([Decimal("100"), Decimal("0.000004"), Decimal("1000000000000")]))
    split = draw(st.decimals(min_value=MICRO, max_value=limit - MICRO, places=6))
    edges = [
        limit,  # alone: exactly the limit, no alert
        limit / 2,
        limit / 4,
        limit - MICRO,
        MICRO,
        split,  # with the next one: exactly the limit
        limit - split,
        MICRO / 2,  # rounds (half-even) to 0
        MICRO * 3 / 2,  # rounds to 2 micro-USD
        limit / 2 + MICRO / 2,  # a half: rounds to the even neighbour
    ]
    amounts = st.one_of(
        st.sampled_from(edges), st.decimals(min_value=MICRO, max_value=limit, places=6)
    )
    events = [
        (user, offset, draw(amounts))
        for user in range(draw(st.integers(1, 3)))
        for offset in draw(event_times())
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
    max_amount = draw(st.sampled_from([limit / 4, limit / 2, MICRO, split]))
    return Scenario(events, kind, batches, limit, max_amount, draw(st.integers(1, 4)))


Check = Callable[[Finding | None, Windows, Scenario], bool]
"""Asserts a finding against the reference windows; returns whether it was a late alert."""


def replay_scenario(
    state: UserState,
    redis_client: redis.Redis,
    scenario: Scenario,
    evaluate: Callable[[Snapshot, Transaction], Finding | None],
    check: Check,
) -> None:
    run = uuid.uuid4().hex[:12]
    txns = [
        transaction(
            user=f"amount-{run}-{user}",
            at=T0 + timedelta(milliseconds=offset),
            amount=format(amount, "f"),
        )
        for user, offset, amount in scenario.events
    ]
    arrived: dict[str, list[tuple[int, Decimal]]] = {}
    first: dict[str, tuple[Snapshot, Finding | None]] = {}
    for number, batch in enumerate(scenario.batches):
        snapshots = state.record(
            [StateEntry(txns[i], None) for i in batch],
            evaluated_at_ms=1_000 + number,
            lookback_ms=WIDTH_MS,
        )
        for i, snapshot in zip(batch, snapshots, strict=True):
            txn = txns[i]
            finding = evaluate(snapshot, txn)
            if txn.transactionId in first:
                stored, verdict = first[txn.transactionId]
                assert snapshot.replayed
                assert snapshot._replace(replayed=False) == stored
                assert finding == verdict
                event("replay")
            else:
                assert not snapshot.replayed
                t = epoch_ms(txn.timestamp)
                assert txn.amountUsd is not None
                times = arrived.setdefault(txn.userId, [])
                times.append((t, as_stored(txn.amountUsd)))
                late = check(finding, windows(times, t, scenario.max_amount), scenario)
                if scenario.kind == "in order":
                    assert not late  # in order, only the window ending here matters
                first[txn.transactionId] = (snapshot, finding)
        # A replay adds no entry: the window holds each arrived transaction once.
        for user in {txns[i].userId for i in batch}:
            assert redis_client.zcard(keys.user_window(user)) == len(arrived[user])


def check_velocity(finding: Finding | None, found: Windows, scenario: Scenario) -> bool:
    best = max(w.total for w in found.all)
    fires = best > scenario.limit
    if best == scenario.limit:
        event("a window of exactly the limit")
    assert (finding is not None) == fires, (found.ending_here, best, scenario.limit)
    if finding is None:
        return False
    details = finding.details
    late = found.ending_here.total <= scenario.limit
    assert details["late"] is late
    assert details["limit_usd"] == scenario.limit
    assert details["window_seconds"] == WIDTH_MS // 1000
    if late:  # the busiest window containing this one
        assert details["total_usd"] == best
        assert details["count"] in {w.count for w in found.all if w.total == best}
    else:  # the window ending here
        assert (details["total_usd"], details["count"]) == (
            found.ending_here.total,
            found.ending_here.count,
        )
    event("late alert" if late else "alert")
    return late


def check_card_testing(finding: Finding | None, found: Windows, scenario: Scenario) -> bool:
    best = max(w.small for w in found.all)
    fires = best >= scenario.min_count
    if scenario.max_amount in found.amounts:
        event("an amount of exactly max_amount_usd")
    assert (finding is not None) == fires, (found.ending_here, best, scenario.min_count)
    if finding is None:
        return False
    details = finding.details
    late = found.ending_here.small < scenario.min_count
    assert details["late"] is late
    assert (details["min_count"], details["max_amount_usd"]) == (
        scenario.min_count,
        scenario.max_amount,
    )
    assert details["window_seconds"] == WIDTH_MS // 1000
    assert details["count"] == (best if late else found.ending_here.small)
    event("late alert" if late else "alert")
    return late


def _context_evaluator(
    rule: Callable[..., Finding | None], params: object
) -> Callable[[Snapshot, Transaction], Finding | None]:
    fx_rates = load_fx_rates()

    def evaluate(snapshot: Snapshot, txn: Transaction) -> Finding | None:
        return rule(context_for(txn, Place("New York"), snapshot, fx_rates), params)

    return evaluate


U = MICRO


@PROPERTY
@given(scenario=scenarios())
# Exactly the limit in one window does not fire; a micro-USD more does.
@example(
    scenario=Scenario(
        [(0, 0, Decimal("60")), (0, 999, Decimal("40")), (0, 999, U)],
        "in order",
        [[0], [1], [2]],
        Decimal("100"),
        Decimal("25"),
        1,
    )
)
# Late: the later ones arrived first, and only a window ending after this one fires.
@example(
    scenario=Scenario(
        [(0, 0, Decimal("0.000002")), (0, 999, Decimal("0.000002")), (0, 1000, U)],
        "reversed",
        [[2, 1, 0]],
        Decimal("0.000004"),
        U,
        2,
    )
)
# 1e12 USD amounts: micro-USD sums far past 2**53 stay exact.
@example(
    scenario=Scenario(
        [(0, 5, Decimal("999999999999.999999")), (0, 5, U), (0, 6, U)],
        "shuffled",
        [[1, 0, 2, 1]],
        Decimal("1000000000000"),
        U,
        2,
    )
)
def test_amount_velocity_matches_the_definition_in_any_arrival_order(
    state: UserState, redis_client: redis.Redis, scenario: Scenario
) -> None:
    params = amount_velocity.Params(limit_usd=scenario.limit, window_seconds=WIDTH_MS // 1000)
    replay_scenario(
        state,
        redis_client,
        scenario,
        _context_evaluator(amount_velocity.evaluate, params),
        check_velocity,
    )


@PROPERTY
@given(scenario=scenarios())
# Exactly max_amount_usd counts ("each at most"); a micro-USD more does not.
@example(
    scenario=Scenario(
        [(0, 0, Decimal("25")), (0, 1, Decimal("25.000001")), (0, 2, Decimal("25"))],
        "in order",
        [[0, 1, 2]],
        Decimal("100"),
        Decimal("25"),
        2,
    )
)
# Two a whole window after a late one share no window with it.
@example(
    scenario=Scenario(
        [(0, 0, U), (0, 1000, U), (0, 1000, U)],
        "reversed",
        [[2, 1, 0]],
        Decimal("0.000004"),
        U,
        3,
    )
)
def test_card_testing_matches_the_definition_in_any_arrival_order(
    state: UserState, redis_client: redis.Redis, scenario: Scenario
) -> None:
    params = card_testing.Params(
        max_amount_usd=scenario.max_amount,
        min_count=scenario.min_count,
        window_seconds=WIDTH_MS // 1000,
    )
    replay_scenario(
        state,
        redis_client,
        scenario,
        _context_evaluator(card_testing.evaluate, params),
        check_card_testing,
    )
