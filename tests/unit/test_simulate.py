"""The simulator's traffic: deterministic for a seed and start, every pattern in it,
ordinary users' travel possible, and the files a backtest reads."""

from __future__ import annotations

import hashlib
import itertools
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tools import simulate
from tools.simulation.scorecard import score
from tools.simulation.traffic import PATTERNS, Place, Plan, distance_km, generate

START = "2026-12-01T12:00:00Z"


def dry_run(out: Path, *extra: str) -> dict[str, str]:
    argv = ["--transactions", "600", "--users", "60", "--seed", "11", "--start", START]
    assert simulate.main([*argv, *extra, "--dry-run", "--out", str(out)]) == 0
    return {
        name: hashlib.sha256((out / name).read_bytes()).hexdigest()
        for name in ("transactions.jsonl", "labels.jsonl")
    }


def test_the_same_seed_and_start_give_the_same_bytes(tmp_path: Path) -> None:
    assert dry_run(tmp_path / "a") == dry_run(tmp_path / "b")
    assert dry_run(tmp_path / "c", "--seed", "12") != dry_run(tmp_path / "a")


def test_every_pattern_is_injected_and_every_transaction_labelled(tmp_path: Path) -> None:
    dry_run(tmp_path)
    sent = [json.loads(line) for line in (tmp_path / "transactions.jsonl").open()]
    labels = [json.loads(line) for line in (tmp_path / "labels.jsonl").open()]
    assert len(sent) == len(labels) == 600
    assert [s["transactionId"] for s in sent] == [lab["transactionId"] for lab in labels]
    assert {lab["pattern"] for lab in labels if lab["label"] == "fraud"} == set(PATTERNS)
    assert {lab["label"] for lab in labels} == {"fraud", "legit"}
    times = [datetime.fromisoformat(s["timestamp"]) for s in sent]
    assert times == sorted(times)  # event-time order
    end = datetime.fromisoformat(START)
    assert end - timedelta(hours=24) <= times[0] and times[-1] <= end


def _plan() -> Plan:
    return Plan(seed=3, users=150, transactions=3000, start=datetime(2026, 12, 1, tzinfo=UTC))


def test_ordinary_users_never_travel_faster_than_a_plane_nor_burst() -> None:
    by_user: dict[str, list[tuple[datetime, Place]]] = {}
    for sim in generate(_plan()):
        if sim.label == "legit":
            body = sim.body
            place = Place(body["location"], body["latitude"], body["longitude"])
            by_user.setdefault(sim.user_id, []).append((sim.at, place))
    assert any(len({p.name for _, p in rows}) > 1 for rows in by_user.values())
    for rows in by_user.values():
        for (t1, p1), (t2, p2) in itertools.pairwise(rows):
            hours = (t2 - t1).total_seconds() / 3600
            assert hours >= 2 / 60
            assert distance_km(p1, p2) < 100 or distance_km(p1, p2) / hours < 900


def test_patterns_have_the_shape_their_rules_look_for() -> None:
    episodes: dict[str, list[dict[str, object]]] = {}
    for sim in generate(_plan()):
        if sim.episode is not None:
            episodes.setdefault(sim.episode, []).append(sim.body)
    kinds = Counter(name.split("/")[1] for name in episodes)
    assert set(kinds) == set(PATTERNS)
    for name, bodies in episodes.items():
        amounts = [float(str(b["amount"])) for b in bodies]
        if name.endswith("/large_transfer"):
            assert amounts[0] > 10_000
        if name.endswith("/card_testing"):
            assert len(amounts) >= 8 and max(amounts) <= 2
        if name.endswith("/burst"):
            first, last = (
                datetime.fromisoformat(str(b["timestamp"])) for b in (bodies[0], bodies[-1])
            )
            assert len(bodies) >= 8 and (last - first).total_seconds() <= 40


def test_the_scorecard_counts_caught_and_missed_episodes_and_false_alerts() -> None:
    transactions = generate(_plan())
    ids = [t.ref for t in transactions]
    large = next(t.ref for t in transactions if t.pattern == "large_transfer")
    legit = next(t.ref for t in transactions if t.label == "legit")
    card = score(transactions, ids, [(large, "large-amount"), (legit, "rapid-transactions")])
    row = card["patterns"]["large_transfer"]
    assert (row["caught"], row["caughtBy"]) == (1, {"large-amount": 1})
    assert row["missed"] == row["injected"] - 1
    assert card["patterns"]["burst"]["caught"] == 0
    assert card["legit"]["byRule"] == {"rapid-transactions": 1}


def test_too_few_users_or_transactions_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="users"):
        generate(Plan(seed=1, users=3, transactions=100, start=datetime.now(UTC)))
    assert simulate.main(["--transactions", "5", "--dry-run", "--out", str(tmp_path)]) == 2
