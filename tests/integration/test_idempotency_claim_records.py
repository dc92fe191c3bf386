"""The Idempotency-Key claim that also writes the request's records (one round trip):
a won claim writes the marker, every record and its pending-index entry; a lost one
(replay, in flight, other request) writes nothing. Against a real redis-server."""

from __future__ import annotations

import json
import uuid

import pytest
import redis

from fraud_common import keys
from fraud_common.http_errors import ApiError
from transaction_service.idempotency import Claim, IdempotencyStore, StoredResponse
from transaction_service.publishing import RecordWrite


def _records(count: int) -> list[RecordWrite]:
    ids = [str(uuid.uuid4()) for _ in range(count)]
    return [
        RecordWrite(
            keys.transaction(t), json.dumps({"transactionId": t}), 600, keys.pending(t), t, 1000 + i
        )
        for i, t in enumerate(ids)
    ]


def _written(client: redis.Redis, records: list[RecordWrite]) -> list[bool]:
    return [
        client.get(r.record_key) == r.payload
        and client.zscore(r.pending_key, r.transaction_id) == r.score
        and 0 < client.ttl(r.record_key) <= r.ttl_seconds
        for r in records
    ]


@pytest.mark.parametrize("count", [1, 3])
def test_a_won_claim_writes_every_record(redis_client: redis.Redis, count: int) -> None:
    store = IdempotencyStore(redis_client, ttl_seconds=600, in_flight_seconds=30)
    records = _records(count)
    key = f"anon:{uuid.uuid4()}"

    claim = store.claim(key, "fp", records)

    assert isinstance(claim, Claim)
    assert redis_client.get(claim.key) == claim.marker
    assert 0 < redis_client.ttl(claim.key) <= 30
    assert _written(redis_client, records) == [True] * count


def test_a_lost_claim_writes_nothing(redis_client: redis.Redis) -> None:
    store = IdempotencyStore(redis_client, ttl_seconds=600, in_flight_seconds=30)
    key = f"anon:{uuid.uuid4()}"
    first = store.claim(key, "fp", _records(1))
    assert isinstance(first, Claim)

    others = _records(1)
    with pytest.raises(ApiError) as in_flight:
        store.claim(key, "fp", others)
    assert in_flight.value.status == 409
    with pytest.raises(ApiError) as mismatch:
        store.claim(key, "another request", others)
    assert mismatch.value.status == 422

    store.complete(first, StoredResponse(201, '{"status":"success"}', "/x"))
    replay = store.claim(key, "fp", others)
    assert replay == StoredResponse(201, '{"status":"success"}', "/x")
    assert redis_client.get(others[0].record_key) is None
    assert redis_client.zscore(others[0].pending_key, others[0].transaction_id) is None
