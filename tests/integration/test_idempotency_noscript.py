"""The claim and completion scripts are sent as bare ``EVALSHA``: a Redis that lost its
script cache (restart, ``SCRIPT FLUSH``, failover to a replica) gets the script loaded
once and the call repeated, as redis-py's `Script` would. Against a real redis-server."""

from __future__ import annotations

import json
import uuid

import redis

from fraud_common import keys
from transaction_service.idempotency import Claim, IdempotencyStore, StoredResponse
from transaction_service.publishing import RecordWrite


def test_claim_and_complete_after_the_script_cache_was_flushed(
    redis_client: redis.Redis,
) -> None:
    store = IdempotencyStore(redis_client, ttl_seconds=600, in_flight_seconds=30)
    tid = str(uuid.uuid4())
    record = RecordWrite(
        keys.transaction(tid), json.dumps({"id": tid}), 600, keys.pending(tid), tid, 7
    )
    redis_client.script_flush()

    key = f"anon:{uuid.uuid4()}"
    claim = store.claim(key, "fp", [record])
    assert isinstance(claim, Claim)
    assert redis_client.get(record.record_key) == record.payload
    assert redis_client.zscore(record.pending_key, tid) == 7

    redis_client.script_flush()
    store.complete(claim, StoredResponse(201, '{"ok":true}', "/x"))
    done = json.loads(redis_client.get(claim.key) or "{}")
    assert (done["state"], done["status"], done["body"]) == ("done", 201, '{"ok":true}')

    replay = store.claim(key, "fp", [record])
    assert replay == StoredResponse(201, '{"ok":true}', "/x")
