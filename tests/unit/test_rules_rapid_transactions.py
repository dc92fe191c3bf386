"""Rapid transactions: more than 5 in a 30 s window (event time) containing this one.

In-order cases replay a user's sequence: every transaction is evaluated with all
earlier event times, as the state would hold them. Late cases give a transaction the
later event times that arrived before it.
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


def _late(at: float, *, before: Sequence[float] = (), after: Sequence[float] = ()):
    """Context of a transaction at T0 + ``at`` s that arrives after transactions at
    ``before`` and ``after`` (s), as the state returns them (earlier ones newest first
    with this one, later ones oldest first)."""
    txn = transaction(at=T0 + timedelta(seconds=at))
    recent = sorted([*(T0 + timedelta(seconds=s) for s in before), txn.timestamp], reverse=True)
    later = sorted(T0 + timedelta(seconds=s) for s in after)
    base = context(txn)
    return base._replace(recent_event_times=tuple(recent), later_event_times=tuple(later))


def test_a_late_event_completes_a_window_of_later_ones() -> None:
    finding = rapid_transactions.evaluate(_late(10, after=[11, 12, 13, 14, 15]), PARAMS)
    assert finding is not None
    assert finding.details["late"] is True
    assert finding.details["count"] == 6
    assert finding.details["first_in_window"] == "2026-11-28T10:00:10.000Z"
    assert finding.details["window_end"] == "2026-11-28T10:00:15.000Z"
    assert "arrived first" in finding.message


def test_a_late_event_alone_with_five_later_ones_in_30s_needs_them_within_the_window() -> None:
    # (10, 40] does not contain 10: the one at exactly +30 s shares no window with it.
    assert rapid_transactions.evaluate(_late(10, after=[11, 12, 13, 14, 40]), PARAMS) is None
    assert rapid_transactions.evaluate(_late(10, after=[11, 12, 13, 40, 40, 40]), PARAMS) is None
    finding = rapid_transactions.evaluate(_late(10, after=[11, 12, 13, 14, 39.999]), PARAMS)
    assert finding is not None
    assert finding.details["window_end"] == "2026-11-28T10:00:39.999Z"


def test_a_window_across_this_one_counts_both_sides() -> None:
    # 3 before, 3 after, all within 30 s of each other: (t - 30, t] holds 4, but
    # (5, 35] holds all 7.
    finding = rapid_transactions.evaluate(_late(20, before=[6, 7, 8], after=[30, 31, 35]), PARAMS)
    assert finding is not None
    assert (finding.details["count"], finding.details["late"]) == (7, True)
    assert finding.details["first_in_window"] == "2026-11-28T10:00:06.000Z"
    # ... and the busiest window wins over an earlier one that fires too.
    finding = rapid_transactions.evaluate(
        _late(20, before=[], after=[21, 22, 23, 24, 25, 49, 49, 49]), PARAMS
    )
    assert finding is not None
    assert (finding.details["count"], finding.details["window_end"]) == (
        9,
        "2026-11-28T10:00:49.000Z",
    )


def test_the_window_ending_here_is_described_when_it_fires_even_if_late() -> None:
    finding = rapid_transactions.evaluate(
        _late(20, before=[15, 16, 17, 18, 19], after=[21, 22, 23]), PARAMS
    )
    assert finding is not None
    assert finding.details["late"] is False
    assert finding.details["count"] == 6
    assert finding.details["window_end"] == "2026-11-28T10:00:20.000Z"
    assert "arrived first" not in finding.message


def test_later_events_do_not_fire_without_enough_in_one_window() -> None:
    # 5 at most in any 30 s window that contains 20.
    assert rapid_transactions.evaluate(_late(20, before=[0, 5], after=[26, 45, 49]), PARAMS) is None


def test_equal_event_times_all_count() -> None:
    assert _alerting([3] * 7) == [6, 7]
    assert rapid_transactions.evaluate(_late(3, after=[3.5] * 5), PARAMS) is not None


def test_details_keep_original_fields() -> None:
    times = [T0 + timedelta(seconds=s) for s in range(6)]
    txn = transaction(at=T0 + timedelta(seconds=6))
    finding = rapid_transactions.evaluate(context(txn, earlier=times), PARAMS)
    assert finding is not None
    assert finding.details["count"] == 7
    assert finding.details["time_window"] == 30
    assert finding.details["threshold_count"] == 5
    assert finding.details["threshold_time"] == 30
    assert finding.details["late"] is False
    assert finding.details["first_in_window"] == "2026-11-28T10:00:00.000Z"
    assert finding.details["window_end"] == "2026-11-28T10:00:06.000Z"
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
