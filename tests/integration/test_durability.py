"""REDIS_DURABILITY against real servers: Valkey 8 (has WAITAOF) and the local
redis-server 7.0 (has none), with the fsync policies the modes are about.

Whether WAITAOF really ran is read from the server's own ``INFO commandstats``.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import redis
import requests

from fraud_common import keys
from fraud_common.durability import DurabilityNotConfirmed, RedisDurability
from fraud_common.failures import is_dependency_failure
from tests.support.durable_redis import DurableRedisServer, require_valkey
from tests.support.transaction_server import PARTITIONS, new_topics, read_messages
from tests.support.transaction_server import transaction_server as run_transaction_server

pytestmark = pytest.mark.integration

TRANSACTIONS = "/api/v1/transactions"


def waitaof_calls(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return int(stats.get("cmdstat_waitaof", {}).get("calls", 0))


def a_transaction(**fields: Any) -> dict[str, Any]:
    return {
        "userId": f"user-{uuid.uuid4().hex[:12]}",
        "amount": "12.50",
        "currency": "USD",
        "location": "New York",
        **fields,
    }


def pending_entries(client: redis.Redis) -> dict[str, float]:
    found: dict[str, float] = {}
    for shard in range(keys.PENDING_SHARDS):
        found.update(client.zrange(keys.pending_index(shard), 0, -1, withscores=True))
    return found


@pytest.fixture(scope="module")
def valkey_always() -> Iterator[DurableRedisServer]:
    """Valkey with appendfsync always: the production pairing for waitaof."""
    with DurableRedisServer(binary=require_valkey(), appendfsync="always") as server:
        yield server


@pytest.fixture
def valkey(valkey_always: DurableRedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(valkey_always.url, decode_responses=True)
    client.flushall()
    yield client
    client.close()


# --- waitaof through the transaction-service ----------------------------------------


def test_a_201_comes_only_after_waitaof_confirmed_record_and_idempotency_record(
    kafka_bootstrap: str, valkey_always: DurableRedisServer, valkey: redis.Redis
) -> None:
    topics = new_topics(kafka_bootstrap)
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "REDIS_URL": valkey_always.url,
        "REDIS_DURABILITY": "waitaof",
        **topics,
    }
    with run_transaction_server(env) as service:
        before = waitaof_calls(valkey)
        body = a_transaction()
        response = requests.post(
            f"{service.url}{TRANSACTIONS}",
            json=body,
            headers={"Idempotency-Key": f"key-{uuid.uuid4().hex}"},
            timeout=10,
        )
        assert response.status_code == 201, response.text
        # One WAITAOF after the record's pipeline, one after the idempotency record.
        assert waitaof_calls(valkey) - before == 2

        created = response.json()
        transaction_id = created["transactionId"]
        record = json.loads(valkey.get(keys.transaction(transaction_id)) or "null")
        assert record == created["transaction"]
        accepted_ms = valkey.zscore(keys.pending(transaction_id), transaction_id)
        assert accepted_ms is not None
        assert abs(accepted_ms / 1000 - _epoch(record["receivedAt"])) < 0.001

        batch = {"transactions": [a_transaction(), a_transaction()]}
        before = waitaof_calls(valkey)
        response = requests.post(f"{service.url}{TRANSACTIONS}/batch", json=batch, timeout=10)
        assert response.status_code == 201, response.text
        assert waitaof_calls(valkey) - before == 1  # one pipeline for the whole batch
        for transaction_id in response.json()["transactionIds"]:
            assert valkey.zscore(keys.pending(transaction_id), transaction_id) is not None


@pytest.mark.parametrize("server_kind", ["redis-7.0-without-waitaof", "valkey-with-appendonly-no"])
def test_without_a_confirmation_nothing_is_accepted(kafka_bootstrap: str, server_kind: str) -> None:
    if server_kind == "valkey-with-appendonly-no":
        server = DurableRedisServer(binary=require_valkey(), appendonly=False)
    else:
        server = DurableRedisServer(appendfsync="everysec")  # redis-server on PATH, 7.0
    topics = new_topics(kafka_bootstrap)
    with server, redis.Redis.from_url(server.url, decode_responses=True) as client:
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "REDIS_URL": server.url,
            "REDIS_DURABILITY": "waitaof",
            **topics,
        }
        with run_transaction_server(env) as service:
            body = a_transaction()
            response = requests.post(f"{service.url}{TRANSACTIONS}", json=body, timeout=10)
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] == "service_unavailable"
            assert "Retry-After" in response.headers

            assert client.keys(f"{keys.PREFIX}:txn:*") == []
            assert pending_entries(client) == {}
        published = read_messages(
            kafka_bootstrap,
            topics["TRANSACTIONS_TOPIC"],
            expect=1,
            partitions=PARTITIONS,
            keep=lambda m: m.key() == body["userId"].encode(),
            timeout=2.0,
        )
        assert published == []


# --- the helper against the servers --------------------------------------------------


def test_waitaof_start_check_names_what_the_server_lacks(caplog: pytest.LogCaptureFixture) -> None:
    with (
        DurableRedisServer(appendfsync="everysec") as old,
        redis.Redis.from_url(old.url, decode_responses=True) as client,
        caplog.at_level(logging.ERROR, logger="fraud_common.durability"),
    ):
        status = RedisDurability("waitaof").check(client)
    assert status.state == "failing" and not status.healthy
    assert "Redis >= 7.2" in status.detail
    assert any("Redis >= 7.2" in r.getMessage() for r in caplog.records)


def test_wait_covers_writes_made_on_other_connections(valkey: redis.Redis) -> None:
    durability = RedisDurability("waitaof", timeout_ms=1000)
    assert durability.check(valkey).state == "confirmed"
    with redis.Redis(port=valkey.connection_pool.connection_kwargs["port"]) as other:
        other.set("written-elsewhere", "1")
    before = waitaof_calls(valkey)
    durability.wait(valkey)
    assert waitaof_calls(valkey) - before == 1
    assert valkey.exists(keys.DURABILITY_FENCE)
    assert durability.status().state == "confirmed"


def test_an_unconfirmed_fsync_fails_as_redis_unavailable() -> None:
    # everysec fsyncs at most once a second: a write right after an fsync stays unsynced
    # for most of a second, far longer than 1 ms.
    with (
        DurableRedisServer(binary=require_valkey(), appendfsync="everysec") as server,
        redis.Redis.from_url(server.url, decode_responses=True) as client,
    ):
        patient = RedisDurability("waitaof", timeout_ms=1500)
        hasty = RedisDurability("waitaof", timeout_ms=1)
        pipe = client.pipeline(transaction=False)
        pipe.set("first", "1")
        assert patient.execute(pipe) == [True]  # waits for the next fsync

        pipe = client.pipeline(transaction=False)
        pipe.set("second", "2")
        with pytest.raises(DurabilityNotConfirmed) as caught:
            hasty.execute(pipe)
        assert isinstance(caught.value, redis.ConnectionError)
        assert is_dependency_failure(caught.value)  # the consumer loop retries the batch
        assert hasty.status().state == "failing"
        assert client.get("second") == "2"  # written, only not known to be on disk


def test_always_follows_the_servers_fsync_policy() -> None:
    with (
        DurableRedisServer(appendfsync="everysec") as server,
        redis.Redis.from_url(server.url, decode_responses=True) as client,
    ):
        durability = RedisDurability("always", recheck_seconds=0)
        status = durability.check(client)
        assert status.state == "failing"
        assert "appendfsync everysec" in status.detail
        pipe = client.pipeline(transaction=False)
        pipe.set("refused", "1")
        with pytest.raises(DurabilityNotConfirmed):
            durability.execute(pipe)
        assert client.get("refused") is None  # refused before anything was written

        client.config_set("appendfsync", "always")
        pipe = client.pipeline(transaction=False)
        pipe.set("accepted", "1")
        assert durability.execute(pipe) == [True]
        durability.wait(client)
        assert durability.status().state == "confirmed"


def test_always_without_config_is_unverified_logged_and_trusted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with (
        DurableRedisServer(appendfsync="always", extra=("--rename-command", "CONFIG", "")) as srv,
        redis.Redis.from_url(srv.url, decode_responses=True) as client,
        caplog.at_level(logging.WARNING, logger="fraud_common.durability"),
    ):
        durability = RedisDurability("always")
        status = durability.check(client)
        assert status.state == "unverified" and status.healthy
        assert durability.health(client)["state"] == "unverified"
        durability.wait(client)  # trusted: no error
    [line] = [r for r in caplog.records if "unverified" in r.getMessage()]
    assert line.levelno == logging.WARNING
    assert "CONFIG GET is not allowed" in line.getMessage()


def test_none_issues_no_command(valkey: redis.Redis) -> None:
    durability = RedisDurability("none")
    before = waitaof_calls(valkey)
    pipe = valkey.pipeline(transaction=False)
    pipe.set("plain", "1")
    assert durability.execute(pipe) == [True]
    durability.wait(valkey)
    assert waitaof_calls(valkey) == before
    assert durability.check(valkey).state == "off"


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()
