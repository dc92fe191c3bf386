"""The event-time windows around a transaction that the amount rules judge.

Same semantics as the rapid rule (`rapid_transactions`): windows are half-open,
``(end - width, end]``, and a rule fires when ANY window that contains this
transaction's event time ``t`` breaks its limit, whatever order the user's transactions
arrived in. The window ending at ``t`` is tried first: when the user's transactions
arrive in order nothing is later than ``t``, so that window is the whole rule.
Otherwise the windows worth trying end at the user's event times ``e`` with
``t < e < t + width`` (sliding a window's end down to its newest member drops nobody,
so no other end can hold more): the late windows, which count transactions with later
event times that arrived first.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from fraud_detection.rules.base import WindowEntry


def to_ms(value: datetime) -> datetime:
    """``value`` at the millisecond resolution the state keeps event times in."""
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def in_window(
    entries: Sequence[WindowEntry], times: Sequence[datetime], end: datetime, width: timedelta
) -> Sequence[WindowEntry]:
    """The members of ``(end - width, end]``; ``times`` are the entries' (sorted) times."""
    return entries[bisect_right(times, end - width) : bisect_right(times, end)]


def breaking_window(
    entries: Sequence[WindowEntry],
    at: datetime,
    width: timedelta,
    measure: Callable[[Sequence[WindowEntry]], int],
    breaks: Callable[[int], bool],
) -> tuple[datetime, Sequence[WindowEntry], bool] | None:
    """(end, members, late) of a window containing ``at`` whose ``measure`` ``breaks``
    the limit: the one ending at ``at`` when it does, else the late one with the
    largest measure (the earliest of equals); None when none does.

    ``measure`` must not shrink when members are added (a count, a sum of amounts), and
    ``breaks`` must hold for every value above one it holds for (a limit): so when all
    of ``entries`` together do not break it, no window of them does."""
    if not breaks(measure(entries)):
        return None
    ordered = sorted(entries, key=lambda e: e.event_time)
    times = [e.event_time for e in ordered]
    here = in_window(ordered, times, at, width)
    if breaks(measure(here)):
        return at, here, False
    best: tuple[int, datetime, Sequence[WindowEntry]] | None = None
    for end in sorted({t for t in times if at < t < at + width}):
        members = in_window(ordered, times, end, width)
        value = measure(members)
        if best is None or value > best[0]:
            best = (value, end, members)
    if best is None or not breaks(best[0]):
        return None
    return best[1], best[2], True
