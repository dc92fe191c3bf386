"""Session fixtures: a real Kafka-protocol broker and a real Redis for the whole run.

Which broker: ``KAFKA_BOOTSTRAP_SERVERS`` when set (an existing Kafka); otherwise the
embedded Tansu broker on a free port. Which Redis: ``TEST_REDIS_URL`` when set (it is
then flushed between tests, so point it only at a throwaway server); otherwise a
``redis-server`` started here on a free port. The shared Redis on 6379 is never used.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import redis

from fraud_common.kafka.topics import contract_topics, ensure_topics
from fraud_common.redis_client import connect
from tools.local_services import RedisServer, TansuBroker


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    existing = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if existing:
        yield existing
        return
    with TansuBroker() as broker:
        yield broker.bootstrap_servers


@pytest.fixture(scope="session")
def redis_server_url() -> Iterator[str]:
    existing = os.environ.get("TEST_REDIS_URL")
    if existing:
        yield existing
        return
    with RedisServer(appendonly=False) as server:
        yield server.url


@pytest.fixture
def redis_url(redis_server_url: str) -> str:
    """The session's Redis, emptied before the test (it is ours, started above)."""
    client = redis.Redis.from_url(redis_server_url)
    client.flushall()
    client.close()
    return redis_server_url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A client as the services make it (`fraud_common.redis_client.connect`)."""
    client = connect(redis_url)
    yield client
    client.close()


@dataclass(frozen=True)
class TopicNames:
    """A test's own topics (uuid-suffixed), created with the contract's partitions."""

    transactions: str
    alerts: str

    @property
    def transactions_dlq(self) -> str:
        return f"{self.transactions}.dlq"

    @property
    def alerts_dlq(self) -> str:
        return f"{self.alerts}.dlq"

    def as_env(self) -> dict[str, str]:
        return {"TRANSACTIONS_TOPIC": self.transactions, "ALERTS_TOPIC": self.alerts}


@pytest.fixture
def topic_factory(kafka_bootstrap: str) -> Callable[[], TopicNames]:
    def make() -> TopicNames:
        suffix = uuid.uuid4().hex[:10]
        names = TopicNames(f"transactions-{suffix}", f"fraud-alerts-{suffix}")
        ensure_topics(kafka_bootstrap, contract_topics(names.transactions, names.alerts))
        return names

    return make


@pytest.fixture
def topics(topic_factory: Callable[[], TopicNames]) -> TopicNames:
    return topic_factory()


@pytest.fixture
def unique_group() -> Callable[[str], str]:
    return lambda base: f"{base}-{uuid.uuid4().hex[:10]}"
