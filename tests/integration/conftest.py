"""Module-scoped fixtures of the detector's integration tests: each module gets its own
redis-server (append-only, so a test can restart it without losing state), its own pair
of contract topics, a writer that produces as the transaction-service does, and a
client to look at the store. Each module starts its detector with the settings it needs."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from fraud_common.kafka.topics import contract_topics, ensure_topics
from fraud_common.redis_client import connect
from tests.conftest import TopicNames
from tests.support.detector_running import TopicWriter
from tools.local_services import RedisServer
from tools.redis_cluster import RedisCluster


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer(appendonly=True) as server:
        yield server


@pytest.fixture(scope="module")
def store(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url, decode_responses=True, socket_timeout=2)
    yield client
    client.close()


@pytest.fixture(scope="module")
def module_topics(kafka_bootstrap: str) -> TopicNames:
    suffix = uuid.uuid4().hex[:10]
    names = TopicNames(f"transactions-{suffix}", f"fraud-alerts-{suffix}")
    ensure_topics(kafka_bootstrap, contract_topics(names.transactions, names.alerts))
    return names


@pytest.fixture(scope="module")
def writer(kafka_bootstrap: str, module_topics: TopicNames) -> TopicWriter:
    return TopicWriter(kafka_bootstrap, module_topics.transactions)


@pytest.fixture(scope="session")
def cluster() -> Iterator[RedisCluster]:
    """One real 3-master Redis Cluster for every cluster test of the run (started on first
    use: a cluster takes seconds to form)."""
    with RedisCluster() as running:
        yield running


@pytest.fixture
def cluster_client(cluster: RedisCluster) -> Iterator[redis.Redis]:
    """The services' cluster client, on nodes emptied of data and scripts."""
    for port in cluster.ports:
        with redis.Redis(port=port) as node:
            node.flushall()
            node.script_flush()
    client = connect(cluster.url, cluster=True)
    yield client
    client.close()
