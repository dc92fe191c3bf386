"""``Idempotency-Key``: the first response to a key is kept in Redis and replayed.

One Redis key per idempotency key (`fraud_common.keys.idempotency`) holds either an
in-flight marker or the finished response, each with the fingerprint of the request
that claimed it:

- claim: ``SET NX GET`` of an in-flight marker (short TTL, so the key frees itself if
  the worker holding it dies); the previous value, if any, decides: same fingerprint
  and finished -> replay, same fingerprint in flight -> 409, other fingerprint -> 422;
- complete: the marker is replaced by the response (24 h), only by its owner;
- release: a failed request deletes its own marker, so the client can retry.

Keys are scoped per API key: `validate_key` returns ``<scope>:<Idempotency-Key>``, the
scope being the first 32 hex digits of the sha256 of the presented ``X-API-Key`` (or
``anon`` when API keys are off). Two clients that pick the same Idempotency-Key never see
each other's responses, nor get each other's transaction id (derived from the scoped key).

All state is in Redis, so this holds across gunicorn workers and service replicas.
With ``REDIS_DURABILITY`` on, completing waits until the response is on Redis's disk
(`fraud_common.durability`), so a replay survives a host crash of Redis.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import redis
from flask import current_app, has_request_context, request
from redis.commands.core import Script
from redis.exceptions import NoScriptError

from fraud_common import keys
from fraud_common.api_keys import HEADER as API_KEY_HEADER
from fraud_common.durability import RedisDurability
from fraud_common.http_errors import ApiError, validation_error
from transaction_service.publishing import RecordWrite

MAX_KEY_LENGTH = 255
HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
ANONYMOUS_SCOPE = "anon"
_CONTEXT_EXTENSION = "transaction_service"  # transaction_service.context.EXTENSION

# Replace/delete the record only while it still holds the caller's own marker.
_COMPLETE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
end
return false
"""
# The claim and, when it is won, the request's records and pending-index entries in one
# round trip (`IdempotencyStore.claim` with ``records``; one Redis only: the keys are in
# different cluster slots). KEYS: the idempotency key, then per record its key and its
# pending-index shard; ARGV: marker, marker TTL, then per record payload, TTL, id, score.
_CLAIM_AND_STORE = """
local previous = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'GET', 'EX', ARGV[2])
if previous then
  return previous
end
for i = 0, (#KEYS - 1) / 2 - 1 do
  local a = 3 + i * 4
  redis.call('SET', KEYS[2 + i * 2], ARGV[a], 'EX', ARGV[a + 1])
  redis.call('ZADD', KEYS[3 + i * 2], ARGV[a + 3], ARGV[a + 2])
end
return false
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: str
    location: str | None = None


@dataclass(frozen=True)
class Claim:
    """Ownership of a key while its request runs (the exact marker string written)."""

    key: str
    marker: str


def validate_key(value: str | None, scope: str | None = None) -> str | None:
    """The header's value scoped to the caller (``<scope>:<value>``, see `scoped_key`),
    or None when absent; `ApiError` 400 when empty or too long. ``scope`` defaults to
    the current request's (`request_scope`)."""
    if value is None:
        return None
    if not value.strip() or len(value) > MAX_KEY_LENGTH:
        raise validation_error(
            [{"field": HEADER, "message": f"must be 1-{MAX_KEY_LENGTH} characters"}]
        )
    return scoped_key(value, request_scope() if scope is None else scope)


def scope_of(presented_api_key: str | None, keys_enabled: bool) -> str:
    """Whose Idempotency-Keys: a hash of the API key (never the key), or ``anon``."""
    if not keys_enabled or not presented_api_key:
        return ANONYMOUS_SCOPE
    return hashlib.sha256(presented_api_key.encode()).hexdigest()[:32]


def scoped_key(value: str, scope: str = ANONYMOUS_SCOPE) -> str:
    """``<scope>:<Idempotency-Key>``: what the Redis record and the transaction id use."""
    return f"{scope}:{value}"


def request_scope() -> str:
    """The scope of the current request: its ``X-API-Key`` when the service checks keys
    (the request got past that check, so the key is a valid one)."""
    if not has_request_context():
        return ANONYMOUS_SCOPE
    context = current_app.extensions.get(_CONTEXT_EXTENSION)
    api_keys = getattr(context, "api_keys", None)
    enabled = bool(api_keys is not None and api_keys.enabled)
    return scope_of(request.headers.get(API_KEY_HEADER), enabled)


def _canonical_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def fingerprint(path: str, body: Any) -> str:
    """sha256 of the endpoint and the body in canonical form (sorted keys, compact)."""
    canonical = json.dumps(
        body,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=_canonical_default,
    )
    return hashlib.sha256(f"{path}\n{canonical}".encode()).hexdigest()


class IdempotencyStore:
    def __init__(
        self,
        client: redis.Redis,
        *,
        ttl_seconds: int,
        in_flight_seconds: int,
        durability: RedisDurability | None = None,
    ) -> None:
        self._redis = client
        self._durability = durability or RedisDurability()
        self._ttl = ttl_seconds
        self._in_flight = in_flight_seconds
        self._complete = client.register_script(_COMPLETE)
        self._release = client.register_script(_RELEASE)
        self._claim_and_store = client.register_script(_CLAIM_AND_STORE)

    def _evalsha(self, script: Script, keys: list[str], args: list[str | int]) -> Any:
        """``EVALSHA`` sent straight to the client: what ``script(keys=, args=)`` does
        (loading the script once when Redis lacks it) without `redis.commands.Script`'s
        argument handling, ~15 us of CPU less per call on a POST's path."""
        try:
            return self._redis.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
        except NoScriptError:
            script.sha = self._redis.script_load(script.script)
            return self._redis.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)

    def claim(
        self,
        key: str,
        request_fingerprint: str,
        records: Sequence[RecordWrite] | None = None,
    ) -> Claim | StoredResponse:
        """Claim ``key`` (scoped, as `validate_key` returns it) for this request, or
        return the response to replay. With ``records`` (`Publisher.records`, only where
        `Publisher.records_foldable`), a won claim has also written them, in the same
        round trip; a lost one wrote nothing.

        Raises `ApiError` 422 (key used with another request) or 409 (still in flight),
        and `redis.RedisError` when Redis is away.
        """
        name = keys.idempotency(key)
        marker = json.dumps(
            {"state": "in_flight", "fingerprint": request_fingerprint, "owner": uuid.uuid4().hex}
        )
        if records is None:
            previous = self._redis.set(name, marker, nx=True, ex=self._in_flight, get=True)
        else:
            script_keys = [name]
            args: list[str | int] = [marker, self._in_flight]
            for write in records:
                script_keys += [write.record_key, write.pending_key]
                args += [write.payload, write.ttl_seconds, write.transaction_id, write.score]
            previous = self._evalsha(self._claim_and_store, script_keys, args)
        if previous is None:
            return Claim(name, marker)
        record = json.loads(str(previous))
        if record.get("fingerprint") != request_fingerprint:
            raise ApiError(
                422,
                "idempotency_key_mismatch",
                "this Idempotency-Key was used with a different request",
                [{"field": HEADER, "message": "already used with a different request body"}],
            )
        if record.get("state") != "done":
            raise ApiError(
                409,
                "idempotency_key_in_flight",
                "a request with this Idempotency-Key is still being processed; retry shortly",
                [{"field": HEADER, "message": "a request with this key is in flight"}],
                headers={"Retry-After": "1"},
            )
        return StoredResponse(int(record["status"]), str(record["body"]), record.get("location"))

    def complete(self, claim: Claim, response: StoredResponse) -> None:
        """Keep ``response`` as the answer to the key (raises `redis.RedisError`, also
        when the durability confirmation fails)."""
        record = json.loads(claim.marker)
        record.update(
            state="done", status=response.status, body=response.body, location=response.location
        )
        args: list[str | int] = [claim.marker, json.dumps(record), self._ttl]
        if not self._durability.enabled:
            # One EVALSHA (the script loads itself once if Redis lacks it): a pipeline
            # would send SCRIPT EXISTS first, one more round trip on every request.
            self._evalsha(self._complete, [claim.key], args)
            return
        pipe = self._redis.pipeline(transaction=False)
        self._complete(keys=[claim.key], args=args, client=pipe)
        self._durability.execute(pipe)

    def release(self, claim: Claim) -> None:
        """Free the key after a failed request (raises `redis.RedisError`)."""
        self._release(keys=[claim.key], args=[claim.marker])
