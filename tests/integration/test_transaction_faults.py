"""The transaction-service with its broker or its Redis away: bounded 503s with
Retry-After, nothing accepted, health naming the dependency, and recovery by itself.

Each test runs its own broker or redis-server (not the session's) so it can stop it.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import requests
from confluent_kafka import Message

from fraud_common.kafka.topics import contract_topics, ensure_topics
from tests.support.transaction_server import (
    PARTITIONS,
    assert_conforms,
    new_topics,
    read_messages,
    transaction_server,
)
from tools.devstack import ServiceProcess
from tools.local_services import RedisServer, TansuBroker, wait_for
from transaction_service.idempotency import scoped_key
from transaction_service.validation import transaction_id_for

pytestmark = pytest.mark.integration

TRANSACTIONS = "/api/v1/transactions"
HEALTH = "/api/v1/health"
BOUND_SECONDS = 5.0  # issue 3: no request hangs past ~5 s


def a_transaction(user_id: str | None = None) -> dict[str, Any]:
    return {
        "userId": user_id or f"user-{uuid.uuid4().hex[:12]}",
        "amount": "42.00",
        "currency": "USD",
        "location": "Chicago",
    }


def post(server: ServiceProcess, body: Any, **headers: str) -> requests.Response:
    return requests.post(f"{server.url}{TRANSACTIONS}", json=body, headers=headers, timeout=15)


def timed_post(server: ServiceProcess, body: Any, **headers: str) -> requests.Response:
    started = time.monotonic()
    response = post(server, body, **headers)
    elapsed = time.monotonic() - started
    assert elapsed < BOUND_SECONDS, f"answered after {elapsed:.1f}s"
    return response


def health_says(server: ServiceProcess, dependency: str, state: str) -> bool:
    response = requests.get(f"{server.url}{HEALTH}", timeout=10)
    body = response.json()
    expected_status = 200 if state == "connected" else 503
    return response.status_code == expected_status and body[dependency] == state


def assert_unavailable(
    response: requests.Response, document: dict[str, Any], path: str, method: str = "post"
) -> None:
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) > 0
    assert response.json()["error"]["code"] == "service_unavailable"
    assert_conforms(document, path, method, response)


def messages_for(bootstrap: str, topic: str, user_id: str, expect: int) -> list[Message]:
    return read_messages(
        bootstrap,
        topic,
        expect=expect,
        partitions=PARTITIONS,
        keep=lambda m: m.key() == user_id.encode(),
        settle=1.0,
    )


@pytest.fixture
def own_broker() -> Iterator[TansuBroker]:
    broker = TansuBroker()
    broker.start()
    try:
        yield broker
    finally:
        broker.cleanup()


def test_broker_away_gets_bounded_503s_and_comes_back_without_restart(
    own_broker: TansuBroker, redis_url: str, redis_client: redis.Redis
) -> None:
    bootstrap = own_broker.bootstrap_servers
    topics = new_topics(bootstrap)
    env = {"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "REDIS_URL": redis_url, **topics}
    with transaction_server(env) as server:
        document = requests.get(f"{server.url}/api/v1/openapi.json", timeout=10).json()
        assert post(server, a_transaction()).status_code == 201
        stored_before = set(redis_client.keys("fraud:txn:*"))

        own_broker.stop()
        user, key = f"user-{uuid.uuid4().hex[:12]}", str(uuid.uuid4())
        body = a_transaction(user)
        refused = timed_post(server, body, **{"Idempotency-Key": key})
        assert_unavailable(refused, document, TRANSACTIONS)
        batch = requests.post(
            f"{server.url}{TRANSACTIONS}/batch",
            json={"transactions": [a_transaction(user), a_transaction(user)]},
            timeout=15,
        )
        assert_unavailable(batch, document, f"{TRANSACTIONS}/batch")
        assert "Idempotency-Key" in batch.json()["error"]["message"]

        # Nothing was accepted: no record, nothing readable under the id the key derives.
        assert set(redis_client.keys("fraud:txn:*")) == stored_before
        derived = transaction_id_for(scoped_key(key))
        lookup = requests.get(f"{server.url}{TRANSACTIONS}/{derived}", timeout=10)
        assert lookup.status_code == 404
        wait_for(lambda: health_says(server, "kafka", "disconnected"), timeout=30, what="health")

        # The embedded broker keeps topics in memory: a restart on the same port comes
        # back empty, as a fresh cluster would, so the topics are created again.
        own_broker.start(port=own_broker.port)
        ensure_topics(bootstrap, contract_topics(topics["TRANSACTIONS_TOPIC"], "unused-alerts"))

        answers: list[requests.Response] = []

        def retried() -> bool:
            answers.append(timed_post(server, body, **{"Idempotency-Key": key}))
            return answers[-1].status_code == 201

        try:
            wait_for(retried, timeout=30, interval=0.2, what="a 201 after the broker returned")
        except TimeoutError:
            print([a.text for a in answers[-3:]], server.log_tail(6000))
            raise
        assert {a.status_code for a in answers[:-1]} <= {503}
        accepted = answers[-1].json()
        assert accepted["transactionId"] == transaction_id_for(scoped_key(key))
        wait_for(lambda: health_says(server, "kafka", "connected"), timeout=30, what="health")

        published = messages_for(bootstrap, topics["TRANSACTIONS_TOPIC"], user, 1)
        assert published, "the accepted transaction is not on the topic"
        # Retries carry the key's id, so even a late copy is the same transaction.
        ids = {json.loads(m.value() or b"")["transactionId"] for m in published}
        assert ids == {accepted["transactionId"]}


def test_redis_away_gets_bounded_503s_and_health_names_it(
    kafka_bootstrap: str,
) -> None:
    topics = new_topics(kafka_bootstrap)
    with RedisServer(appendonly=False) as own_redis:
        env = {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "REDIS_URL": own_redis.url, **topics}
        with transaction_server(env) as server:
            document = requests.get(f"{server.url}/api/v1/openapi.json", timeout=10).json()
            assert post(server, a_transaction()).status_code == 201

            own_redis.stop()
            refused_user = f"user-{uuid.uuid4().hex[:12]}"
            plain = timed_post(server, a_transaction(refused_user))
            assert_unavailable(plain, document, TRANSACTIONS)
            keyed = timed_post(
                server, a_transaction(refused_user), **{"Idempotency-Key": str(uuid.uuid4())}
            )
            assert_unavailable(keyed, document, TRANSACTIONS)
            lookup = requests.get(f"{server.url}{TRANSACTIONS}/{uuid.uuid4()}", timeout=10)
            assert_unavailable(lookup, document, f"{TRANSACTIONS}/{{transactionId}}", "get")
            wait_for(
                lambda: health_says(server, "redis", "disconnected"), timeout=30, what="health"
            )

            own_redis.start(port=own_redis.port)
            wait_for(
                lambda: post(server, a_transaction()).status_code == 201,
                timeout=30,
                interval=0.2,
                what="a 201 after Redis returned",
            )
            wait_for(lambda: health_says(server, "redis", "connected"), timeout=30, what="health")

    # Nothing refused was published.
    assert messages_for(kafka_bootstrap, topics["TRANSACTIONS_TOPIC"], refused_user, 0) == []
