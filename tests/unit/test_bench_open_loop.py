"""The open loop's latency runs from each request's scheduled time, so a stall counts
against every request it delayed (no coordinated omission). Driven by a fake clock."""

from __future__ import annotations

import pytest

from tools.bench.load import OpenLoop, Schedule


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def run(service_times: list[float], rate: float) -> tuple[OpenLoop, FakeClock]:
    clock = FakeClock()

    def send(index: int) -> tuple[int, int]:
        clock.now += service_times[index]
        return 201, index

    loop = OpenLoop(send, rate=rate, count=len(service_times), clock=clock, sleep=clock.sleep)
    loop.start()
    loop.sender()  # one sender, in this thread
    return loop, clock


def test_schedule() -> None:
    schedule = Schedule(rate=100, start=5.0)
    assert schedule.due(0) == 5.0
    assert schedule.due(250) == pytest.approx(7.5)


def test_a_fast_server_is_sent_to_on_schedule() -> None:
    loop, clock = run([0.002] * 5, rate=10)  # one every 100 ms, answered in 2 ms
    assert [o.latency for o in loop.outcomes] == pytest.approx([0.002] * 5)
    assert [o.scheduled for o in loop.outcomes] == pytest.approx(
        [100.0, 100.1, 100.2, 100.3, 100.4]
    )
    assert len(clock.slept) == 4  # waited for each due time after the first


def test_a_stall_counts_against_every_request_it_delayed() -> None:
    # Request 1 takes a full second; requests 2.. were due every 100 ms meanwhile and
    # go out late. Timed from their own send they would look fast (2 ms): they are not.
    loop, _ = run([0.002, 1.0, 0.002, 0.002, 0.002], rate=10)
    latencies = [o.latency for o in loop.outcomes]
    assert latencies[0] == pytest.approx(0.002)
    assert latencies[1] == pytest.approx(1.0)
    # 2 was due at +0.2 s, sent at +1.1 s (when 1 answered), answered at +1.102 s
    assert latencies[2] == pytest.approx(0.902)
    assert latencies[3] == pytest.approx(0.804)
    assert latencies[4] == pytest.approx(0.706)


def test_errors_are_counted_not_timed() -> None:
    clock = FakeClock()

    def send(index: int) -> tuple[int, None]:
        if index == 1:
            raise ConnectionResetError
        return 201, None

    loop = OpenLoop(send, rate=1000, count=3, clock=clock, sleep=clock.sleep)
    loop.start()
    loop.sender()
    assert [o.index for o in loop.outcomes] == [0, 2]
    assert loop.errors == {"ConnectionResetError": 1}


def test_bounds() -> None:
    with pytest.raises(ValueError):
        OpenLoop(lambda i: (201, None), rate=0, count=1)
    with pytest.raises(ValueError):
        OpenLoop(lambda i: (201, None), rate=1, count=0)


def test_a_stopped_loop_sends_nothing_more_and_counts_what_it_never_sent() -> None:
    """Past its time bound the loop is stopped: requests in flight finish, no new one
    starts, and the ones never sent are counted (not mistaken for errors)."""
    clock = FakeClock()
    loop: OpenLoop

    def send(index: int) -> tuple[int, int]:
        if index == 2:
            loop.stop()  # the bound passes while request 2 is in flight
        return 201, index

    loop = OpenLoop(send, rate=10, count=10, clock=clock, sleep=clock.sleep)
    loop.start()
    loop.sender()
    assert [o.index for o in loop.outcomes] == [0, 1, 2]
    assert loop.unsent == 7 and not loop.errors
