"""The shared at-least-once consumer loop against a real broker and a real Redis."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator, Sequence

import pytest
import redis
from confluent_kafka import Consumer, Message, Producer, TopicPartition

from fraud_common.kafka.config import consumer_config, producer_config
from fraud_common.kafka.consumer_loop import ConsumerLoop, InvalidMessage, Record
from fraud_common.kafka.producer import AckingProducer
from fraud_common.settings import dlq_topic
from tests.conftest import TopicNames
from tests.support.kafka_reading import read_topic
from tools.local_services import RedisServer, wait_for

pytestmark = pytest.mark.integration


class CountingHandler:
    """Adds each record's ``n`` to a Redis set: a real dependency that can go away."""

    def __init__(self, client: redis.Redis, key: str) -> None:
        self.client = client
        self.key = key

    def decode(self, message: Message) -> int:
        try:
            return int(json.loads(message.value() or b"")["n"])
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidMessage(f"not a counter message: {exc}") from exc

    def handle(self, records: Sequence[Record[int]]) -> None:
        self.client.sadd(self.key, *[r.value for r in records])


def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for i, value in enumerate(values):
        producer.produce(topic, value=value, key=f"k{i % 7}")
    assert producer.flush(15) == 0


def _committed_total(bootstrap: str, group: str, topic: str, partitions: int) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        offsets = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], 10)
        return sum(max(tp.offset, 0) for tp in offsets)
    finally:
        consumer.close()


class RunningLoop:
    def __init__(self, loop: ConsumerLoop[int], producer: AckingProducer) -> None:
        self.loop = loop
        self.producer = producer
        self.thread = threading.Thread(target=loop.run, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.loop.stop()
        self.thread.join(15)
        self.producer.close()
        assert not self.thread.is_alive()


@pytest.fixture
def start_loop(kafka_bootstrap: str) -> Iterator:
    running: list[RunningLoop] = []

    def start(topics: TopicNames, group: str, client: redis.Redis, key: str) -> RunningLoop:
        producer = AckingProducer(producer_config(kafka_bootstrap, client_id="test-dlq"))
        loop: ConsumerLoop[int] = ConsumerLoop(
            consumer_config=consumer_config(kafka_bootstrap, group_id=group, client_id="test"),
            topics=[topics.transactions],
            handler=CountingHandler(client, key),
            producer=producer,
            dlq_topic=dlq_topic,
            backoff_max=0.5,
        )
        running.append(RunningLoop(loop, producer))
        return running[-1]

    yield start
    for item in running:
        if item.thread.is_alive():
            item.stop()


def test_processes_commits_and_dead_letters(
    kafka_bootstrap: str, topics: TopicNames, redis_client: redis.Redis, start_loop
) -> None:
    group = f"loop-{uuid.uuid4().hex[:8]}"
    good = [json.dumps({"n": i}).encode() for i in range(40)]
    bad = [b"\xff\xfe not json", b'{"other": 1}']
    _produce(kafka_bootstrap, topics.transactions, good[:20] + bad + good[20:])

    running = start_loop(topics, group, redis_client, "seen")
    wait_for(lambda: redis_client.scard("seen") == 40, timeout=30, what="40 records handled")
    dead = read_topic(kafka_bootstrap, topics.transactions_dlq, expect=2)
    running.stop()

    assert sorted(int(v) for v in redis_client.smembers("seen")) == list(range(40))
    assert sorted(m.value() for m in dead) == sorted(bad)
    headers = dict(dead[0].headers() or [])
    assert b"not a counter message" in headers["dlq-error"]
    assert headers["dlq-original-topic"].decode() == topics.transactions
    assert int(headers["dlq-original-offset"]) >= 0
    assert _committed_total(kafka_bootstrap, group, topics.transactions, 10) == 42
    assert running.loop.status.processed == 40
    assert running.loop.status.dead_lettered == 2


def test_nothing_committed_while_redis_is_down_then_resumes(
    kafka_bootstrap: str, topics: TopicNames, start_loop
) -> None:
    group = f"loop-{uuid.uuid4().hex[:8]}"
    with RedisServer() as server:
        client = redis.Redis.from_url(server.url, socket_timeout=1, socket_connect_timeout=1)
        running = start_loop(topics, group, client, "seen")
        _produce(kafka_bootstrap, topics.transactions, [b'{"n": 1}'])
        wait_for(lambda: client.scard("seen") == 1, timeout=30, what="first record")
        wait_for(
            lambda: _committed_total(kafka_bootstrap, group, topics.transactions, 10) == 1,
            timeout=15,
            what="first commit",
        )

        server.stop()
        _produce(kafka_bootstrap, topics.transactions, [b'{"n": 2}', b'{"n": 3}'])
        wait_for(lambda: running.loop.status.state == "failing", timeout=30, what="failing")
        assert not running.loop.status.healthy(stall_after=30)
        assert _committed_total(kafka_bootstrap, group, topics.transactions, 10) == 1

        server.start(port=server.port)
        wait_for(lambda: running.loop.status.state == "running", timeout=30, what="recovery")
        wait_for(
            lambda: _committed_total(kafka_bootstrap, group, topics.transactions, 10) == 3,
            timeout=15,
            what="commit after recovery",
        )
        running.stop()
        assert {int(v) for v in client.smembers("seen")} == {1, 2, 3}
        client.close()
