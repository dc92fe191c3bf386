"""Where the handler keeps each transaction's first decision, and the rule stats of it.

`RedisDecisionStore` is the detector's: each decision written once (SET NX GET) with its
ready list pushed and its rule stats counted, in one script call (one per hash slot on a
cluster). `MemoryDecisionStore` is a backtest's: the same "first decision stays, counted
once" in this process, for a replay whose decisions nobody else reads, where the round
trip and the script would be a third of its cost.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, NamedTuple, Protocol

import redis
from redis.cluster import RedisCluster

from fraud_common import keys
from fraud_common.redis_client import run_reloading, slot_groups
from fraud_common.schemas import Decision
from fraud_detection.rules import RuleSet
from fraud_detection.rules_api import RuleStats

READY_TTL_SECONDS = 60
DECIDE_SCRIPT = (
    resources.files("fraud_detection").joinpath("scripts/decide_batch.lua").read_text("utf-8")
)
DECIDE_SHA = hashlib.sha1(DECIDE_SCRIPT.encode()).hexdigest()  # noqa: S324 - Redis's script id

DecideEntry = tuple[str, str, str, list[str]]
"""One decision for ``scripts/decide_batch.lua``: its key, its ready list's key, its JSON,
and the rule-stats fields of its hits."""


class StoredDecision(NamedTuple):
    """A transaction's decision as stored: the first one, and whether it was there
    before this call (a redelivery, or the same transaction earlier in the batch)."""

    decision: Decision
    replayed: bool
    stored_text: str | None = None
    """Its JSON exactly as stored, where the store keeps JSON."""

    def text(self) -> str:
        """Its JSON as stored (built from ``decision`` where the store keeps objects:
        the same text, `Decision.to_json` is deterministic)."""
        return self.decision.to_json() if self.stored_text is None else self.stored_text


class DecisionStore(Protocol):
    def store_first(self, rules: RuleSet, decisions: Sequence[Decision]) -> list[StoredDecision]:
        """Store each decision unless its transaction has one; per decision the one
        stored. The rule stats (``rules``' evaluated rules, and each hit) count the
        decisions stored now, and only those."""
        ...


def hit_rule_ids(decision: Decision) -> list[str]:
    """The rules that fired on a decision, active and shadow, once per hit."""
    return [reason.ruleId for reason in (*decision.reasons, *decision.shadowHits)]


class RedisDecisionStore:
    """Decisions in Redis under `keys.decision`, each for ``decision_ttl_seconds``.

    The same round trip signals each transaction's ready list, which wakes a
    ``Prefer: wait`` request blocked on it (an extra element on a redelivery is
    harmless: the waiter reads the decision itself), and counts the rule stats
    (`RuleStats`) of the decisions it stored, first decisions only:

    - on one Redis inside the script, atomically with the SET NX: a decision is
      counted if and only if it was stored, so exactly once whatever fails later
      (publishing, the counters of the batch, the process): a retry finds it stored
      and counts nothing, and nothing stored goes uncounted;
    - on a cluster the stats hash is in another slot than the decisions, so a second
      pipeline right after the scripts counts what they report as stored. A failure
      between the two (a connection lost, a failover, the process killed) loses
      those counts, because the retry sees replays: at most once, never twice, and
      the window is one round trip.
    """

    def __init__(self, client: redis.Redis, *, decision_ttl_seconds: int) -> None:
        self._redis = client
        self._decision_ttl = decision_ttl_seconds

    def store_first(self, rules: RuleSet, decisions: Sequence[Decision]) -> list[StoredDecision]:
        texts = [decision.to_json() for decision in decisions]
        in_script = not isinstance(self._redis, RedisCluster)
        earlier = self._store(
            [
                (
                    keys.decision(d.transactionId),
                    keys.decision_ready(d.transactionId),
                    text,
                    [RuleStats.hits_field(rule_id) for rule_id in hit_rule_ids(d)],
                )
                for d, text in zip(decisions, texts, strict=True)
            ],
            RuleStats.evaluated_fields(rules) if in_script else None,
        )
        if not in_script:
            first = [d for d, before in zip(decisions, earlier, strict=True) if before is None]
            pipe = self._redis.pipeline(transaction=False)
            RuleStats.count(pipe, rules, len(first), (r for d in first for r in hit_rule_ids(d)))
            pipe.execute()
        return [
            StoredDecision(decision, False, text)
            if before is None
            else StoredDecision(Decision.model_validate_json(before), True, before)
            for decision, text, before in zip(decisions, texts, earlier, strict=True)
        ]

    def _store(
        self, entries: list[DecideEntry], evaluated_fields: list[str] | None
    ) -> list[str | None]:
        """Run ``scripts/decide_batch.lua`` on the entries, counting the rule stats of
        those it stores when ``evaluated_fields`` is given (one Redis only)."""
        # a transaction's keys share its hash tag; the calls that did run before a lost
        # script are replays the second time: the same answers, one more ready push,
        # nothing counted twice
        groups = slot_groups(self._redis, entries, lambda entry: entry[0])
        results = run_reloading(
            self._redis, DECIDE_SCRIPT, lambda: self._run(groups, evaluated_fields)
        )
        earlier: list[str | None] = [None] * len(entries)
        for (positions, _), result in zip(groups, results, strict=True):
            if isinstance(result, Exception):
                raise result
            for position, before in zip(positions, result, strict=True):
                if not isinstance(before, int):  # 0: stored by this call
                    earlier[position] = before.decode() if isinstance(before, bytes) else before
        return earlier

    def _run(
        self,
        groups: list[tuple[list[int], list[DecideEntry]]],
        evaluated_fields: list[str] | None,
    ) -> list[Any]:
        stats_keys = [] if evaluated_fields is None else [keys.RULE_STATS]
        pipe = self._redis.pipeline(transaction=False)
        for _, entries in groups:
            pipe.evalsha(
                DECIDE_SHA,
                1 + len(stats_keys),
                entries[0][0],
                *stats_keys,
                self._decision_ttl,
                READY_TTL_SECONDS,
                json.dumps(entries, ensure_ascii=False, separators=(",", ":")),
                json.dumps(evaluated_fields or [], separators=(",", ":")),
            )
        return list(pipe.execute(raise_on_error=False))


@dataclass
class MemoryDecisionStore:
    """Decisions in this process (a backtest's): ``first`` maps each transaction to its
    first decision; ``stats`` counts as `RuleStats` does (``<ruleId>:evaluated``,
    ``<ruleId>:hits``), first decisions only. No JSON is made unless asked for
    (`StoredDecision.text`)."""

    first: dict[str, Decision] = field(default_factory=dict)
    stats: Counter[str] = field(default_factory=Counter)

    def store_first(self, rules: RuleSet, decisions: Sequence[Decision]) -> list[StoredDecision]:
        stored: list[StoredDecision] = []
        for decision in decisions:
            before = self.first.get(decision.transactionId)
            if before is None:
                self.first[decision.transactionId] = decision
                self.stats.update(RuleStats.hits_field(r) for r in hit_rule_ids(decision))
                stored.append(StoredDecision(decision, False))
            else:
                stored.append(StoredDecision(before, True))
        if first := sum(not s.replayed for s in stored):
            for evaluated in RuleStats.evaluated_fields(rules):
                self.stats[evaluated] += first
        return stored
