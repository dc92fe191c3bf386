"""Which failures hold the batch (a dependency away) and which set a record aside."""

from __future__ import annotations

import concurrent.futures

import pytest
import redis
from confluent_kafka import KafkaError, KafkaException

from fraud_common.failures import describe, is_dependency_failure
from fraud_common.kafka.producer import DeliveryFailed


@pytest.mark.parametrize(
    "exc",
    [
        redis.ConnectionError("refused"),
        redis.TimeoutError("timed out"),
        redis.BusyLoadingError("loading"),
        redis.ReadOnlyError("replica"),
        redis.exceptions.OutOfMemoryError("OOM command not allowed"),
        redis.exceptions.ClusterDownError("down"),
        concurrent.futures.TimeoutError(),
        DeliveryFailed(KafkaError(KafkaError._MSG_TIMED_OUT)),
        KafkaException(KafkaError(KafkaError._ALL_BROKERS_DOWN)),
    ],
)
def test_a_dependency_away_holds_the_batch(exc: BaseException) -> None:
    assert is_dependency_failure(exc)


@pytest.mark.parametrize(
    "exc",
    [
        redis.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"),
        OverflowError("date value out of range"),
        ValueError("bad"),
        KeyError("rate"),
        DeliveryFailed(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)),
    ],
)
def test_anything_else_belongs_to_the_record(exc: BaseException) -> None:
    assert not is_dependency_failure(exc)


def test_the_reason_is_one_short_line() -> None:
    assert describe(OverflowError("date value out of range")) == (
        "OverflowError: date value out of range"
    )
    assert describe(ValueError("first\nsecond")) == "ValueError: first"
    assert describe(KeyError()) == "KeyError"
    assert len(describe(ValueError("x" * 5000))) == 500
