"""The archive on the whole local stack (real Tansu, Redis, PostgreSQL, the four services):
a transaction older than the Redis retention (its Redis keys expired) is still readable
with its decision through ``GET /api/v1/transactions/<id>``, from PostgreSQL, in the
same shape as from Redis; the archive away is a 503, and back it answers again."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import redis
import requests

from fraud_common import keys
from tests.support.postgres import query
from tools.devstack import DevStack
from tools.local_services import wait_for

pytestmark = pytest.mark.e2e


def post(base: str, user: str, amount: str) -> str:
    response = requests.post(
        f"{base}/api/v1/transactions",
        json={"userId": user, "amount": amount, "currency": "USD", "location": "New York"},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["transactionId"])


def decided(base: str, transaction_id: str) -> dict[str, Any] | None:
    response = requests.get(f"{base}/api/v1/transactions/{transaction_id}", timeout=10)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return None if body["status"] == "pending" else body


def archived(url: str, transaction_id: str) -> bool:
    rows = query(
        url,
        "SELECT count(*) FROM transactions JOIN decisions USING (transaction_id) "
        "WHERE transaction_id = %s",
        (transaction_id,),
    )
    return rows[0][0] == 1


def expire_in_redis(stack: DevStack, transaction_id: str) -> None:
    """What the retention does, now: the record's and the decision's keys expire."""
    client = redis.Redis.from_url(stack.redis_url)
    try:
        for key in (keys.transaction(transaction_id), keys.decision(transaction_id)):
            client.pexpire(key, 1)
        wait_for(
            lambda: (
                client.exists(keys.transaction(transaction_id), keys.decision(transaction_id)) == 0
            ),
            timeout=10,
            what="the Redis keys to expire",
        )
    finally:
        client.close()


def test_a_transaction_past_its_redis_retention_is_read_from_the_archive(
    stack: DevStack,
) -> None:
    url = stack.archive_database_url
    assert url is not None, "the local stack runs with its archive"
    base = stack.service("transaction").url
    user = f"e2e-archive-{uuid.uuid4().hex[:8]}"
    large, small = post(base, user, "15000.00"), post(base, user, "20.00")

    views: dict[str, dict[str, Any]] = {}

    def both_decided() -> bool:
        for transaction_id in (large, small):
            view = decided(base, transaction_id)
            if view is not None:
                views[transaction_id] = view
        return len(views) == 2

    wait_for(both_decided, timeout=60, interval=0.2, what="both decisions")
    assert views[large]["status"] == "review" and views[large]["alerts"]
    wait_for(
        lambda: archived(url, large) and archived(url, small),
        timeout=60,
        interval=0.2,
        what="both archived with their decisions",
    )

    for transaction_id in (large, small):
        expire_in_redis(stack, transaction_id)
        response = requests.get(f"{base}/api/v1/transactions/{transaction_id}", timeout=10)
        assert response.status_code == 200, response.text
        assert response.json() == views[transaction_id]  # the same view, from PostgreSQL

    missing = requests.get(f"{base}/api/v1/transactions/{uuid.uuid4()}", timeout=10)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"

    health_url = f"{stack.service('archive-service').url}/health"
    healthy = requests.get(health_url, timeout=10)
    assert healthy.status_code == 200, healthy.text
    assert (healthy.json()["postgres"], healthy.json()["kafka"]) == ("connected", "connected")

    postgres = stack.postgres
    assert postgres is not None and postgres.owned
    postgres.stop()
    try:
        away = requests.get(f"{base}/api/v1/transactions/{large}", timeout=10)
        assert away.status_code == 503
        assert away.json()["error"]["code"] == "service_unavailable"
        assert "Retry-After" in away.headers
        assert "Traceback" not in away.text
        wait_for(  # the archiver's health is cached for a second
            lambda: requests.get(health_url, timeout=10).status_code == 503,
            timeout=30,
            what="the archive-service to report PostgreSQL away",
        )
        assert requests.get(health_url, timeout=10).json()["postgres"] == "disconnected"
    finally:
        postgres.start()
    back = requests.get(f"{base}/api/v1/transactions/{large}", timeout=10)
    assert back.status_code == 200 and back.json() == views[large]
    wait_for(
        lambda: requests.get(health_url, timeout=10).status_code == 200,
        timeout=30,
        what="the archive-service healthy again",
    )
