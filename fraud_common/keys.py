"""Every Redis key name of the platform, in one place.

Keys that belong to one user carry the user id as a hash tag (``{...}``) and keys that
belong to one transaction carry its id, so each group lands in one Redis Cluster slot
and a Lua script or MULTI over it stays legal on a cluster.
"""

from __future__ import annotations

import zlib

PREFIX = "fraud"


def transaction(transaction_id: str) -> str:
    """JSON record of an accepted transaction (written by the transaction-service)."""
    return f"{PREFIX}:txn:{{{transaction_id}}}"


def decision(transaction_id: str) -> str:
    """JSON decision for a transaction (written by the detector once its alerts are out)."""
    return f"{PREFIX}:txn:{{{transaction_id}}}:decision"


PENDING_SHARDS = 16
"""How many sorted sets the pending index is spread over (each with its own hash tag,
so each is one cluster slot and no command ever spans two). Changing it strands the
entries of the old layout: keep it fixed."""


def pending_shard(transaction_id: str) -> int:
    """The pending-index shard of a transaction: a stable hash of its id (crc32, the same
    in every process and release, unlike ``hash()``)."""
    return zlib.crc32(transaction_id.encode()) % PENDING_SHARDS


def pending_index(shard: int) -> str:
    """Sorted set of accepted transaction ids scored by acceptance time (ms), one of
    `PENDING_SHARDS`: written with the record, read by the detector's reconciler, which
    re-drives the ones still undecided after a while and removes the decided ones."""
    return f"{PREFIX}:pending:{{pending-{shard}}}"


def pending(transaction_id: str) -> str:
    """The pending-index shard key that holds ``transaction_id``."""
    return pending_index(pending_shard(transaction_id))


def pending_lock(shard: int) -> str:
    """Lock of one pending-index shard (SET NX PX): one reconciler sweeps it at a time."""
    return f"{PREFIX}:pending:{{pending-{shard}}}:lock"


DURABILITY_FENCE = f"{PREFIX}:durability:fence"
"""Written just before a ``WAITAOF`` that must cover writes made on other connections: once
it is fsynced, every write answered before it is too (the AOF is one ordered file)."""


def decision_ready(transaction_id: str) -> str:
    """List the detector pushes to once a decision is written (expires after a minute):
    the transaction-service blocks on it (BLPOP) to answer ``Prefer: wait=N`` inline."""
    return f"{PREFIX}:txn:{{{transaction_id}}}:ready"


def idempotency(key: str) -> str:
    """Record of an ``Idempotency-Key``: request fingerprint, state and first response."""
    return f"{PREFIX}:idem:{{{key}}}"


def user_window(user_id: str) -> str:
    """Sorted set of the user's transaction ids scored by event time (ms)."""
    return f"{PREFIX}:user:{{{user_id}}}:window"


def user_last_seen(user_id: str) -> str:
    """JSON of the user's previous transaction: place, coordinates, event time."""
    return f"{PREFIX}:user:{{{user_id}}}:last"


def user_places(user_id: str) -> str:
    """Sorted set of the places the user has used (rounded coordinates or a normalised
    name, as the detector keys them) scored by the latest event time (ms) of each."""
    return f"{PREFIX}:user:{{{user_id}}}:places"


def user_evaluation(user_id: str, transaction_id: str) -> str:
    """The state a transaction was evaluated against, kept so a replay sees the same."""
    return f"{PREFIX}:user:{{{user_id}}}:eval:{transaction_id}"


def alert(alert_id: str) -> str:
    """JSON of a stored alert (alert-service); its existence deduplicates redeliveries."""
    return f"{PREFIX}:alert:{{{alert_id}}}"


ALERTS_RECENT = f"{PREFIX}:alerts:recent"
"""Sorted set of alert ids scored by store time (ms), bounded."""

ALERTS_STREAM = f"{PREFIX}:alerts:stream"
"""Redis stream of stored alerts, in store order (XADD MAXLEN ~ bound): the source of
live subscribers (SSE) and the durable queue of the notification channels (one consumer
group per channel). Entry fields: ``alertId`` and ``alert`` (the alert's JSON)."""


ALERTS_APPENDED_INDEX = f"{PREFIX}:alerts:appended:{{{ALERTS_STREAM}}}"
"""Hash alertId -> stream entry id of the alerts appended to `ALERTS_STREAM` (hash-tagged
with the stream's name: same cluster slot), so an append is never made twice."""

ALERTS_APPENDED_ORDER = f"{PREFIX}:alerts:appended-order:{{{ALERTS_STREAM}}}"
"""Sorted set of the same alertIds scored by stream id: the oldest are dropped first."""


def alerts_by_user(user_id: str) -> str:
    """Sorted set of one user's alert ids scored by store time (ms), bounded."""
    return f"{PREFIX}:alerts:user:{{{user_id}}}"


def stats_transactions(epoch_second: int) -> str:
    """Count of transactions evaluated during one second (detector; expires after 1 h)."""
    return f"{PREFIX}:stats:transactions:{epoch_second}"


def stats_alerts(epoch_second: int) -> str:
    """Count of alerts stored during one second (alert-service; expires after 1 h)."""
    return f"{PREFIX}:stats:alerts:{epoch_second}"


def notify_cooldown(channel: str, user_id: str, alert_type: str) -> str:
    """Set (NX, EX cooldown) when a channel notifies; while it exists, no re-notification."""
    return f"{PREFIX}:cooldown:{channel}:{{{user_id}}}:{alert_type}"


def notify_group(channel: str) -> str:
    """Consumer group of one notification channel on `ALERTS_STREAM` (a group name inside
    the stream's key, not a key itself); its workers share it."""
    return f"notify:{channel}"


def notify_retry_schedule(stream: str, channel: str) -> str:
    """Sorted set of a channel's stream entry ids waiting for a retry, scored by due time
    (ms). Hash-tagged with the stream's name: same cluster slot as the stream."""
    return f"{{{stream}}}:notify:{channel}:retry"


def notify_retry_attempts(stream: str, channel: str) -> str:
    """Hash of a channel's stream entry id -> JSON ``{"attempts", "error"}`` of the failed
    deliveries so far. Hash-tagged with the stream's name, like the retry schedule."""
    return f"{{{stream}}}:notify:{channel}:attempts"


RULE_STATS = f"{PREFIX}:rules:stats"
"""Hash of per-rule counters, ``<ruleId>:evaluated`` and ``<ruleId>:hits`` (detector):
first evaluations only, shared by every detector worker and process."""


def list_entries(name: str) -> str:
    """Hash of one list (fraud-detection-service): value -> JSON ``{"reason", "addedAt",
    "updatedAt", "expiresAt"}``. Hash-tagged with the list's name, like `list_expiry`."""
    return f"{PREFIX}:list:{{{name}}}:entries"


def list_expiry(name: str) -> str:
    """Sorted set of one list's values scored by expiry (ms; +inf: never): the lookup's
    truth, an entry whose expiry has passed is absent (removed lazily by the next write)."""
    return f"{PREFIX}:list:{{{name}}}:expiry"


# Cases (alert-service). No TTL on any of them: cases, verdicts and labels outlive the
# alerts. A case's own keys carry its user's hash tag (one slot with the user's open-case
# pointer, so opening, joining and closing are single-slot scripts); the lookup by case id
# and the listing indexes are separate single-key steps.


def case_open(user_id: str) -> str:
    """The id of the user's open case (absent: none open); at most one per user."""
    return f"{PREFIX}:cases:user:{{{user_id}}}:open"


def case_members(user_id: str) -> str:
    """Hash alertId -> caseId of every alert the user's cases took: an alert joins once,
    also when it is redelivered after its case was closed."""
    return f"{PREFIX}:cases:user:{{{user_id}}}:members"


def case(user_id: str, case_id: str) -> str:
    """Hash of one case: status, times, counts, assignee, verdict, comment."""
    return f"{PREFIX}:case:{{{user_id}}}:{case_id}"


def case_alerts(user_id: str, case_id: str) -> str:
    """List of the case's alert copies (JSON, arrival order, bounded)."""
    return f"{PREFIX}:case:{{{user_id}}}:{case_id}:alerts"


def case_history(user_id: str, case_id: str) -> str:
    """List of the case's history entries (JSON ``{at, actor, action, details}``), append-only."""
    return f"{PREFIX}:case:{{{user_id}}}:{case_id}:history"


def case_owner(case_id: str) -> str:
    """The user id of a case (its keys are found by it)."""
    return f"{PREFIX}:case-owner:{{{case_id}}}"


def cases_index(status: str) -> str:
    """Sorted set of case ids scored by last activity (ms): ``open``, ``closed`` or ``all``."""
    return f"{PREFIX}:cases:index:{status}"


def rule_quality(rule_id: str) -> str:
    """Hash of one rule's verdict counters: alerts, labelled, confirmedFraud, falsePositive."""
    return f"{PREFIX}:rules:quality:{{{rule_id}}}"


def rule_quality_seen(rule_id: str) -> str:
    """Sorted set (same slot as `rule_quality`) of what was counted (``a:<alertId>``,
    ``l:<alertId>``), bounded: a repeated count after a crash or redelivery is a no-op."""
    return f"{PREFIX}:rules:quality:{{{rule_id}}}:seen"


RULES_QUALITY_INDEX = f"{PREFIX}:rules:quality:index"
"""Set of the rule ids that have quality counters."""

LABELS = f"{PREFIX}:labels"
"""Hash transactionId -> JSON ``{transactionId, userId, label, caseId, at}`` of the labels
that verdicts gave (a later verdict on the same transaction replaces the earlier)."""
