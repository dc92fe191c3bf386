"""Rapid transactions: more than 5 in the 30 s (event time) ending at this one.

Each case replays a user's sequence: every transaction is evaluated with all earlier
event times, as the state would hold them, and the rule decides on its own window.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pytest

from fraud_detection.rules import rapid_transactions
from tests.support.detector_factories import T0, context, transaction

PARAMS = rapid_transactions.Params(max_count=5, window_seconds=30)


def _alerting(offsets: Sequence[float]) -> list[int]:
    """1-based positions of the transactions that alert, for event times T0 + offsets (s)."""
    times = [T0 + timedelta(seconds=s) for s in offsets]
    fired = []
    for i, at in enumerate(times):
        txn = transaction(at=at)
        if rapid_transactions.evaluate(context(txn, earlier=times[:i]), PARAMS) is not None:
            fired.append(i + 1)
    return fired


def test_sixth_and_seventh_within_30s_alert_fifth_does_not() -> None:
    assert _alerting([0, 1, 2, 3, 4, 5, 6]) == [6, 7]


def test_twenty_back_to_back_alert_from_the_sixth_on() -> None:
    assert _alerting([i * 0.5 for i in range(20)]) == list(range(6, 21))


def test_the_first_five_never_alert() -> None:
    assert _alerting([0, 0, 0, 0, 0]) == []


def test_count_restarts_after_a_31s_gap() -> None:
    burst = [0, 1, 2, 3, 4, 5]
    after_gap = [5 + 31 + i for i in range(6)]
    assert _alerting(burst + after_gap) == [6, 12]


def test_entries_leave_the_window_as_it_slides() -> None:
    # One every 6 s: the window (t-30, t] never holds more than 5.
    assert _alerting([i * 6 for i in range(12)]) == []
    # One every 5 s: (t-30, t] holds 6 from the 6th on, and keeps holding 6.
    assert _alerting([i * 5 for i in range(10)]) == list(range(6, 11))


def test_window_is_half_open_at_30_seconds() -> None:
    assert _alerting([0, 10, 20, 25, 29, 30]) == []  # 0 is exactly 30 s before: out
    assert _alerting([0.001, 10, 20, 25, 29, 30]) == [6]  # 29.999 s before: in


def test_a_late_event_counts_only_what_precedes_it() -> None:
    at = T0 + timedelta(seconds=10)
    later = [T0 + timedelta(seconds=s) for s in (11, 12, 13, 14, 15)]
    txn = transaction(at=at)
    assert rapid_transactions.evaluate(context(txn, earlier=later), PARAMS) is None


def test_details_keep_original_fields() -> None:
    times = [T0 + timedelta(seconds=s) for s in range(6)]
    txn = transaction(at=T0 + timedelta(seconds=6))
    finding = rapid_transactions.evaluate(context(txn, earlier=times), PARAMS)
    assert finding is not None
    assert finding.details["count"] == 7
    assert finding.details["time_window"] == 30
    assert finding.details["threshold_count"] == 5
    assert finding.details["threshold_time"] == 30
    assert "7 transactions within 30 s" in finding.message


@pytest.mark.parametrize(("max_count", "expected"), [(2, [3, 4]), (3, [4])])
def test_numbers_are_configurable(max_count: int, expected: list[int]) -> None:
    params = rapid_transactions.Params(max_count=max_count, window_seconds=10)
    times = [T0 + timedelta(seconds=s) for s in (0, 1, 2, 3)]
    fired = [
        i + 1
        for i, at in enumerate(times)
        if rapid_transactions.evaluate(context(transaction(at=at), earlier=times[:i]), params)
    ]
    assert fired == expected
