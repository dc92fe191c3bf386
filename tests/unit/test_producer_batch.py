"""What `AckingProducer.send_all` raises, decided from its delivery reports: the outcome
of the first message (in send order) that is not acknowledged, as ``result()`` on each
future in turn would give."""

from __future__ import annotations

import threading

import pytest
from confluent_kafka import KafkaError

from fraud_common.kafka.producer import DeliveryFailed, _Batch

TIMED_OUT = KafkaError(KafkaError._MSG_TIMED_OUT)
TOO_LARGE = KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)


def batch(size: int) -> tuple[_Batch, threading.Event]:
    timed_out = threading.Event()
    return _Batch(size, timed_out), timed_out


def test_all_acknowledged_returns() -> None:
    b, timed_out = batch(3)
    for i in (2, 0, 1):  # reports from different partitions come in any order
        b.delivered(i, None, None)  # type: ignore[arg-type]
    b.wait(0)
    assert not timed_out.is_set()


def test_the_first_failure_in_send_order_is_raised() -> None:
    b, timed_out = batch(4)
    b.delivered(3, TIMED_OUT, None)  # type: ignore[arg-type]
    b.delivered(0, None, None)  # type: ignore[arg-type]
    b.delivered(1, TOO_LARGE, None)  # type: ignore[arg-type]
    b.delivered(2, None, None)  # type: ignore[arg-type]
    with pytest.raises(DeliveryFailed) as caught:
        b.wait(0)
    assert caught.value.error is TOO_LARGE
    assert timed_out.is_set()  # a timed-out delivery lets the producer check itself


def test_an_earlier_message_still_unacknowledged_is_a_timeout() -> None:
    b, _ = batch(3)
    b.delivered(0, None, None)  # type: ignore[arg-type]
    b.delivered(2, TOO_LARGE, None)  # type: ignore[arg-type]
    with pytest.raises(TimeoutError):
        b.wait(0.01)


def test_a_failure_before_the_unacknowledged_ones_is_raised() -> None:
    b, _ = batch(3)
    b.delivered(0, TOO_LARGE, None)  # type: ignore[arg-type]
    with pytest.raises(DeliveryFailed):
        b.wait(0.01)
