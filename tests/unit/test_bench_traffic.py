"""The bench's traffic: reproducible, many users at home, ~1% alerting, fresh keys."""

from __future__ import annotations

from decimal import Decimal

import pytest

from fraud_common.schemas import TransactionRequest
from tools.bench.traffic import LARGE_AMOUNT, PLACES, Traffic

THRESHOLD_USD = Decimal(10_000)


def test_same_run_and_seed_same_items() -> None:
    first, again = Traffic("r1"), Traffic("r1")
    assert [first.body(i) for i in range(200)] == [again.body(i) for i in range(200)]
    other_seed = Traffic("r1", seed=1)
    assert [first.body(i) for i in range(200)] != [other_seed.body(i) for i in range(200)]


def test_about_one_percent_alerts_and_only_those_are_large() -> None:
    traffic = Traffic("mix")
    items = [traffic.body(i) for i in range(20_000)]
    large = [i for i, body in enumerate(items) if body["amount"] == LARGE_AMOUNT]
    assert 150 <= len(large) <= 250  # 1% of 20,000 is 200
    assert large == [i for i in range(20_000) if traffic.alerting(i)]
    for body in items:
        if body["amount"] != LARGE_AMOUNT:  # at most 999.99 of USD, EUR or GBP
            assert Decimal(body["amount"]) < 1000
            assert body["currency"] in {"USD", "EUR", "GBP"}
        else:
            assert body["currency"] == "USD" and Decimal(body["amount"]) > THRESHOLD_USD


def test_every_item_is_a_valid_request() -> None:
    traffic = Traffic("valid")
    for index in range(500):
        TransactionRequest.model_validate(traffic.body(index))


def test_many_users_each_at_home_in_mixed_places() -> None:
    traffic = Traffic("users", users=1000)
    bodies = [traffic.body(i) for i in range(5000)]
    assert len({b["userId"] for b in bodies}) == 1000
    assert {b["location"] for b in bodies} == set(PLACES)
    by_user: dict[str, set[str]] = {}
    for body in bodies:
        by_user.setdefault(body["userId"], set()).add(body["location"])
    assert all(len(places) == 1 for places in by_user.values())
    # a user's transactions are `users` items apart: no rapid-transactions bursts
    assert bodies[7]["userId"] == bodies[1007]["userId"] != bodies[8]["userId"]


def test_every_request_has_a_fresh_idempotency_key() -> None:
    traffic = Traffic("keys")
    keys = {traffic.idempotency_key(i) for i in range(1000)}
    assert len(keys) == 1000
    assert traffic.idempotency_key(5) != Traffic("other").idempotency_key(5)
    assert traffic.idempotency_key(5) != traffic.idempotency_key(5, "batch")


def test_batches_are_consecutive_items() -> None:
    traffic = Traffic("batch")
    assert traffic.batch(2, 3) == {"transactions": [traffic.body(i) for i in (6, 7, 8)]}


def test_every_item_alerts_when_asked() -> None:
    traffic = Traffic("all", alert_share=1.0)
    assert all(traffic.body(i)["amount"] == LARGE_AMOUNT for i in range(100))


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        Traffic("x", users=0)
    with pytest.raises(ValueError):
        Traffic("x", alert_share=1.5)
