"""Retry policy: exponential ceiling, capped, with full jitter; bounded attempts."""

from __future__ import annotations

import pytest

from alert_service.notify.retry import RetryPolicy


@pytest.mark.parametrize(
    ("failures", "ceiling"), [(1, 1.0), (2, 2.0), (3, 4.0), (4, 5.0), (60, 5.0)]
)
def test_delay_is_drawn_below_a_capped_exponential_ceiling(failures: int, ceiling: float) -> None:
    policy = RetryPolicy(max_attempts=6, initial_delay=1.0, max_delay=5.0)
    delays = [policy.delay(failures) for _ in range(500)]
    assert all(0.0 <= d <= ceiling for d in delays)
    assert max(delays) > ceiling * 0.8  # the whole range is used ...
    assert min(delays) < ceiling * 0.2  # ... from near zero (full jitter)


def test_attempts_are_bounded() -> None:
    policy = RetryPolicy(max_attempts=3, initial_delay=0.1, max_delay=1.0)
    assert [policy.exhausted(n) for n in (1, 2, 3, 4)] == [False, False, True, True]
