"""Idempotency-Keys are scoped per API key: the same key sent with two API keys is two
requests (two transactions, each replayed to its own client only), never a replay of the
other's response or a 422. The transaction-service under gunicorn on the real broker
and Redis; the Redis record is named by a hash of the API key, never the key."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import requests

from fraud_common import keys
from tests.support.transaction_server import new_topics, transaction_server
from tools.devstack import ServiceProcess
from transaction_service.idempotency import ANONYMOUS_SCOPE, scope_of, scoped_key

pytestmark = pytest.mark.integration

API_KEYS = ("scope-key-one", "scope-key-two")
TRANSACTIONS = "/api/v1/transactions"


@pytest.fixture(scope="module")
def keyed(kafka_bootstrap: str, redis_server_url: str) -> Iterator[ServiceProcess]:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "REDIS_URL": redis_server_url,
        "API_KEYS": ",".join(API_KEYS),
        **new_topics(kafka_bootstrap),
    }
    with transaction_server(env) as server:
        yield server


def _post(server: ServiceProcess, api_key: str, idempotency_key: str, body: Any) -> Any:
    return requests.post(
        f"{server.url}{TRANSACTIONS}",
        json=body,
        headers={"X-API-Key": api_key, "Idempotency-Key": idempotency_key},
        timeout=10,
    )


def test_the_same_idempotency_key_under_two_api_keys_is_two_requests(
    keyed: ServiceProcess, redis_client: redis.Redis
) -> None:
    idempotency_key = f"order-{uuid.uuid4().hex[:8]}"
    mine = {"userId": "scope-a", "amount": "10.00", "currency": "USD", "location": "Paris"}
    theirs = {**mine, "userId": "scope-b", "amount": "99.00"}

    first = _post(keyed, API_KEYS[0], idempotency_key, mine)
    other = _post(keyed, API_KEYS[1], idempotency_key, theirs)  # not a 422: another client
    assert (first.status_code, other.status_code) == (201, 201), (first.text, other.text)
    assert first.json()["transactionId"] != other.json()["transactionId"]

    again = _post(keyed, API_KEYS[0], idempotency_key, mine)
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert _post(keyed, API_KEYS[1], idempotency_key, mine).status_code == 422

    for api_key in API_KEYS:
        scope = hashlib.sha256(api_key.encode()).hexdigest()[:32]
        assert scope == scope_of(api_key, keys_enabled=True)
        assert redis_client.exists(keys.idempotency(scoped_key(idempotency_key, scope)))
    assert not redis_client.exists(keys.idempotency(scoped_key(idempotency_key)))
    assert not any(
        api_key in str(k) for k in redis_client.keys("fraud:idem:*") for api_key in API_KEYS
    )


def test_without_api_keys_the_scope_is_anon() -> None:
    assert scope_of(None, keys_enabled=False) == ANONYMOUS_SCOPE
    assert scope_of("whatever", keys_enabled=False) == ANONYMOUS_SCOPE  # keys off: ignored
    assert scoped_key("order-1") == "anon:order-1"
