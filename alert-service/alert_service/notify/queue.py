"""A channel's durable queue: its consumer group on the alerts stream plus a retry schedule.

Every alert stays pending in the channel's consumer group until its delivery is settled
(delivered, suppressed or parked on the DLQ), so a worker that dies mid-delivery loses
nothing: another worker takes the entry over with XAUTOCLAIM once it has been idle for
``claim_idle_ms``. An entry whose attempt failed stays pending too and is scheduled in a
sorted set (score = due time in ms) with its attempt count in a hash, so the next alerts
of the channel are not held back while it waits.

The schedule's keys (`fraud_common.keys.notify_retry_schedule` and
`fraud_common.keys.notify_retry_attempts`) carry the stream's name as their hash tag:
they share its Redis Cluster slot, which keeps the two Lua scripts below (schedule + PEL
in one step) legal.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import redis

from fraud_common import keys

_POP_DUE = """
local ids = redis.call('ZRANGE', KEYS[1], '-inf', ARGV[3], 'BYSCORE', 'LIMIT', 0, ARGV[4])
if #ids == 0 then return {{}, {}} end
redis.call('ZREM', KEYS[1], unpack(ids))
return {ids, redis.call('XCLAIM', KEYS[2], ARGV[1], ARGV[2], 0, unpack(ids))}
"""
"""Take the due entries off the schedule and claim them (resetting their idle time) in
one step, so no XAUTOCLAIM elsewhere can see them as abandoned in between."""

_AUTOCLAIM = """
local res = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4],
                       'COUNT', ARGV[5])
local orphans = {}
for _, entry in ipairs(res[2]) do
  if type(entry) == 'table' and not redis.call('ZSCORE', KEYS[2], entry[1]) then
    orphans[#orphans + 1] = entry
  end
end
return {res[1], orphans}
"""
"""Claim entries idle for longer than ARGV[3] ms and return those not waiting on the
schedule: they belonged to a worker that died (or stopped) before settling them."""


@dataclass(frozen=True)
class Entry:
    """One alert of the stream as the channel sees it."""

    id: str
    fields: dict[str, str]
    failed_attempts: int = 0
    last_error: str = ""


@dataclass(frozen=True)
class RetryState:
    failed_attempts: int
    last_error: str


def _entries(raw: list[Any]) -> list[Entry]:
    """Entries from redis-py (``(id, {field: value})``) or from a script (flat lists)."""
    out = []
    for item in raw or []:
        if not item:
            continue
        entry_id, flat = item[0], item[1] or []
        if isinstance(flat, dict):
            fields = dict(flat)
        else:
            fields = {flat[i]: flat[i + 1] for i in range(0, len(flat) - 1, 2)}
        out.append(Entry(id=entry_id, fields=fields))
    return out


class ChannelQueue:
    """Redis operations of one channel worker (one consumer of the channel's group).

    The client must decode responses (``fraud_common.redis_client.connect`` does).
    """

    def __init__(self, client: redis.Redis, stream: str, channel: str, consumer: str) -> None:
        self._client = client
        self.stream = stream
        self.group = keys.notify_group(channel)
        self.consumer = consumer
        self.schedule_key = keys.notify_retry_schedule(stream, channel)
        self.state_key = keys.notify_retry_attempts(stream, channel)
        self._pop_due = client.register_script(_POP_DUE)
        self._autoclaim = client.register_script(_AUTOCLAIM)
        self._cursor = "0-0"

    def ensure_group(self) -> bool:
        """Create the group at the stream's end (``$``) unless it exists; True if created."""
        try:
            self._client.xgroup_create(self.stream, self.group, id="$", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
            return False
        return True

    def read_new(self, count: int, block_ms: int | None) -> list[Entry]:
        """New entries for this consumer; waits up to ``block_ms`` (None: no wait)."""
        response: Any = self._client.xreadgroup(
            self.group, self.consumer, {self.stream: ">"}, count=count, block=block_ms
        )
        return _entries(response[0][1]) if response else []

    def pop_due(self, now_ms: int, limit: int) -> tuple[list[Entry], list[str]]:
        """Due retries, claimed by this consumer, with their attempt counts; and the ids
        that were due but are gone from the stream (trimmed or acknowledged)."""
        ids, claimed = self._pop_due(
            keys=[self.schedule_key, self.stream],
            args=[self.group, self.consumer, now_ms, limit],
        )
        entries = _entries(claimed)
        states = self.retry_states([e.id for e in entries])
        found = {e.id for e in entries}
        gone = [i for i in ids if i not in found]
        if gone:
            self._client.hdel(self.state_key, *gone)
        return [
            Entry(e.id, e.fields, states[e.id].failed_attempts, states[e.id].last_error)
            for e in entries
        ], gone

    def claim_orphans(self, min_idle_ms: int, count: int) -> list[Entry]:
        """Entries abandoned by a dead worker (one page of the group's PEL per call)."""
        cursor, orphans = self._autoclaim(
            keys=[self.stream, self.schedule_key],
            args=[self.group, self.consumer, min_idle_ms, self._cursor, count],
        )
        self._cursor = cursor
        entries = _entries(orphans)
        states = self.retry_states([e.id for e in entries])
        return [
            Entry(e.id, e.fields, states[e.id].failed_attempts, states[e.id].last_error)
            for e in entries
        ]

    def retry_states(self, ids: list[str]) -> dict[str, RetryState]:
        if not ids:
            return {}
        raw = self._client.hmget(self.state_key, ids)
        states = {}
        for entry_id, value in zip(ids, raw, strict=True):
            if value:
                data = json.loads(value)
                states[entry_id] = RetryState(int(data["attempts"]), str(data["error"]))
            else:
                states[entry_id] = RetryState(0, "")
        return states

    def touch(self, ids: list[str]) -> None:
        """Reset the idle time of entries still in hand, so nobody takes them over."""
        if ids:
            message_ids: list[Any] = list(ids)
            self._client.xclaim(self.stream, self.group, self.consumer, 0, message_ids, justid=True)

    def schedule(self, entry_id: str, due_ms: int, failed_attempts: int, error: str) -> None:
        """Keep the entry pending and due again at ``due_ms``."""
        state = json.dumps({"attempts": failed_attempts, "error": error})
        pipe = self._client.pipeline(transaction=True)
        pipe.hset(self.state_key, entry_id, state)
        pipe.zadd(self.schedule_key, {entry_id: due_ms})
        pipe.execute()

    def release(self, ids: list[str], now_ms: int) -> None:
        """Hand entries in hand back (on stop): due now, for any worker of the channel."""
        if ids:
            self._client.zadd(self.schedule_key, dict.fromkeys(ids, now_ms))

    def ack(self, entry_id: str) -> None:
        """The entry is settled for this channel."""
        pipe = self._client.pipeline(transaction=True)
        pipe.xack(self.stream, self.group, entry_id)
        pipe.hdel(self.state_key, entry_id)
        pipe.zrem(self.schedule_key, entry_id)
        pipe.execute()

    def next_due_ms(self) -> int | None:
        first = self._client.zrange(self.schedule_key, 0, 0, withscores=True)
        return int(first[0][1]) if first else None

    def pending_of_consumer(self) -> int:
        summary = self._client.xpending_range(
            self.stream, self.group, min="-", max="+", count=1, consumername=self.consumer
        )
        return len(summary)

    def forget_consumer(self) -> None:
        """Remove this consumer from the group (only call with nothing pending on it)."""
        self._client.xgroup_delconsumer(self.stream, self.group, self.consumer)
