"""`AckingProducer.send_all` against a real broker: every message acknowledged before it
returns, and the errors ``send(...).result()`` raises when one is not."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka import KafkaError, Message

from fraud_common.failures import is_dependency_failure
from fraud_common.kafka.config import producer_config
from fraud_common.kafka.producer import AckingProducer, DeliveryFailed, Outgoing, _Batch
from fraud_common.kafka.topics import TopicSpec, ensure_topics
from tests.support.kafka_reading import read_topic
from tools.local_services import free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def producer(kafka_bootstrap: str) -> Iterator[AckingProducer]:
    with AckingProducer(producer_config(kafka_bootstrap, client_id="test-send-all")) as p:
        yield p


@pytest.fixture
def topic(kafka_bootstrap: str) -> str:
    name = f"send-all-{uuid.uuid4().hex[:10]}"
    ensure_topics(kafka_bootstrap, [TopicSpec(name, partitions=3)])
    return name


def test_every_message_is_on_the_topic_when_it_returns(
    producer: AckingProducer, topic: str, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The broker's delivery reports, as they reach the batch: each one acknowledged (an
    # offset, no error) before send_all returns. (flush(0) == 0 said so less exactly: it
    # also counts librdkafka's own requests in flight, and once failed on a busy machine.)
    reports: list[tuple[int, KafkaError | None, int | None]] = []
    delivered = _Batch.delivered

    def observed(batch: _Batch, index: int, error: KafkaError | None, message: Message) -> None:
        reports.append((index, error, message.offset()))
        delivered(batch, index, error, message)

    monkeypatch.setattr(_Batch, "delivered", observed)
    messages = [
        Outgoing(topic, f"value-{i}", f"key-{i % 5}", [("n", str(i))] if i % 2 else None)
        for i in range(300)
    ]
    producer.send_all(messages, timeout=10)
    acknowledged = list(reports)
    assert sorted(index for index, _, _ in acknowledged) == list(range(300))
    assert all(error is None and offset is not None and offset >= 0
               for _, error, offset in acknowledged)  # fmt: skip
    read = read_topic(kafka_bootstrap, topic, expect=300)
    got = {(m.key(), m.value(), tuple(m.headers() or ())) for m in read}
    assert got == {
        (
            m.key.encode(),  # type: ignore[union-attr]
            m.value.encode(),  # type: ignore[union-attr]
            tuple((k, v.encode()) for k, v in m.headers or ()),  # type: ignore[union-attr]
        )
        for m in messages
    }


def test_nothing_to_send_returns_at_once(producer: AckingProducer) -> None:
    producer.send_all([], timeout=0)


def test_a_message_the_broker_can_never_take_fails_as_a_record_failure(
    producer: AckingProducer, topic: str, kafka_bootstrap: str
) -> None:
    too_large = "x" * 2_000_000  # above the client's message.max.bytes
    with pytest.raises(DeliveryFailed) as caught:
        producer.send_all([Outgoing(topic, "fine"), Outgoing(topic, too_large)], timeout=10)
    assert isinstance(caught.value.error, KafkaError)
    assert caught.value.error.code() == KafkaError.MSG_SIZE_TOO_LARGE
    assert not is_dependency_failure(caught.value)  # the loop sets the record aside


def test_an_unreachable_broker_fails_the_delivery() -> None:
    config = producer_config(f"127.0.0.1:{free_port()}", client_id="t", delivery_timeout_ms=300)
    with AckingProducer(config) as unreachable, pytest.raises(DeliveryFailed) as caught:
        unreachable.send_all([Outgoing("anywhere", "v", "k")] * 3, timeout=30)
    assert isinstance(caught.value.error, KafkaError)
    assert caught.value.error.code() == KafkaError._MSG_TIMED_OUT
    assert is_dependency_failure(caught.value)  # the loop retries the batch


def test_acknowledgements_not_in_time_raise_timeout_error() -> None:
    config = producer_config(f"127.0.0.1:{free_port()}", client_id="t", delivery_timeout_ms=30000)
    unreachable = AckingProducer(config)
    try:
        with pytest.raises(TimeoutError) as caught:
            unreachable.send_all([Outgoing("anywhere", "v", "k")] * 2, timeout=0.2)
        assert is_dependency_failure(caught.value)
    finally:
        unreachable.close(timeout=0)
