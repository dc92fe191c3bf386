"""`tools.backtest_input.scan`: the cheap serial pass over a backtest's input, before
the workers validate it; and `load`, both passes in one process."""

from __future__ import annotations

import json

from tools.backtest_input import Problem, load, scan

POSTED = {"userId": "u-1", "amount": "5", "currency": "USD", "location": "Paris"}


def lines(*texts: str) -> list[tuple[str, str]]:
    return [(f"in.jsonl:{n}", text) for n, text in enumerate(texts, start=1)]


def test_scan_keeps_objects_with_their_positions_and_the_first_line_of_each_id() -> None:
    first = json.dumps({**POSTED, "transactionId": "t-1", "timestamp": "2026-11-01T00:00:00Z"})
    scanned = scan(
        lines(first, "", "{nope", "[1]", first.replace('"5"', '"6"'), json.dumps(POSTED))
    )
    assert [(position, where) for position, where, _ in scanned.objects] == [
        (0, "in.jsonl:1"),
        (5, "in.jsonl:6"),  # no transactionId: never a duplicate (its id comes from its line)
    ]
    assert scanned.objects[0][2]["amount"] == "5"  # the first line of t-1 counts
    assert (scanned.loaded.skipped, scanned.loaded.duplicates) == (2, 1)
    assert [p.position for p in scanned.loaded.problems] == [2, 3]
    assert scanned.loaded.problems[1] == Problem(3, "in.jsonl:4: not a JSON object")
    assert scanned.loaded.transactions == []


def test_load_validates_sorts_by_event_time_and_keeps_the_problems_in_input_order() -> None:
    late = json.dumps({**POSTED, "transactionId": "t-late", "timestamp": "2026-11-02T00:00:00Z"})
    early = json.dumps({**POSTED, "transactionId": "t-early", "timestamp": "2026-11-01T00:00:00Z"})
    loaded = load(lines(late, json.dumps(POSTED), "{nope", early), max_problems=5)
    assert [t.transactionId for t in loaded.transactions] == ["t-early", "t-late"]
    assert [p.position for p in loaded.problems] == [1, 2]  # no timestamp; not JSON
    assert "needs its timestamp" in loaded.problems[0].text
    assert loaded.skipped == 2
