"""Per-rule quality from verdicts, and the labels the verdicts give transactions.

Counters per rule (``keys.rule_quality``, hash-tagged with the rule id): ``alerts`` (each
alert once, when it first reaches a case), ``labelled``, ``confirmedFraud`` and
``falsePositive`` (each alert once, when its case is closed). Every increment goes
through ``count_once.lua`` with a marker per alert (``a:<id>``, ``l:<id>``) in the
rule's slot, so a redelivered alert or a repeated close never counts twice; the markers
are bounded (`QualityBounds.markers_kept` per rule), since they only have to outlive a
retry. A legitimate verdict labels the alerts but is neither fraud nor a false positive
(the rule was right to look, the user was fine): precision = confirmedFraud / labelled.

Labels (``keys.LABELS``): transactionId -> ``{transactionId, userId, label, caseId, at}``,
``fraud`` for confirmed_fraud, ``legit`` otherwise; the backtest's ``--labels`` lines.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import redis

from fraud_common import keys
from fraud_common.schemas import Alert

_COUNT = resources.files("alert_service.cases").joinpath("count_once.lua").read_text("utf-8")
COUNTERS = ("alerts", "labelled", "confirmedFraud", "falsePositive")


@dataclass(frozen=True)
class QualityBounds:
    markers_kept: int = 200_000


def rule_of(alert: Alert) -> str:
    """The rule an alert counts for: its ``ruleId`` (alerts from before rule ids: its type)."""
    return alert.ruleId or alert.alertType


class RuleQuality:
    def __init__(
        self,
        client: redis.Redis,
        bounds: QualityBounds | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = client
        self._bounds = bounds or QualityBounds()
        self._clock = clock
        self._count = client.register_script(_COUNT)

    def count_alerts(self, alerts: Sequence[Alert]) -> None:
        self._count_each([(a, f"a:{a.alertId}", ["alerts", 1]) for a in alerts])

    def label(self, alerts: Sequence[Alert], *, case_id: str, verdict: str, at: str) -> None:
        """Label the alerts of a case closed with ``verdict`` (idempotent)."""
        fraud = int(verdict == "confirmed_fraud")
        false_positive = int(verdict == "false_positive")
        increments: list[Any] = ["labelled", 1, "confirmedFraud", fraud]
        increments += ["falsePositive", false_positive]
        self._count_each([(a, f"l:{a.alertId}", increments) for a in alerts])
        label = "fraud" if fraud else "legit"
        pipe = self._redis.pipeline(transaction=False)
        for alert in alerts:
            txn = alert.transaction
            record = {
                "transactionId": txn.transactionId,
                "userId": txn.userId,
                "label": label,
                "caseId": case_id,
                "at": at,
            }
            pipe.hset(keys.LABELS, txn.transactionId, json.dumps(record, separators=(",", ":")))
        if alerts:
            pipe.execute()

    def _count_each(self, items: Sequence[tuple[Alert, str, list[Any]]]) -> None:
        if not items:
            return
        now_ms = int(self._clock() * 1000)
        pipe = self._redis.pipeline(transaction=False)
        for rule in dict.fromkeys(rule_of(alert) for alert, _, _ in items):
            pipe.sadd(keys.RULES_QUALITY_INDEX, rule)
        for alert, marker, increments in items:
            rule = rule_of(alert)
            self._count(
                keys=[keys.rule_quality(rule), keys.rule_quality_seen(rule)],
                args=[marker, now_ms, self._bounds.markers_kept, *increments],
                client=pipe,
            )
        pipe.execute()

    def report(self) -> list[dict[str, Any]]:
        """``[{ruleId, alerts, labelled, confirmedFraud, falsePositive, precision}]`` by id."""
        rules = sorted(str(r) for r in self._redis.smembers(keys.RULES_QUALITY_INDEX))
        pipe = self._redis.pipeline(transaction=False)
        for rule in rules:
            pipe.hmget(keys.rule_quality(rule), list(COUNTERS))
        out = []
        for rule, values in zip(rules, pipe.execute() if rules else [], strict=True):
            counts = {name: int(v or 0) for name, v in zip(COUNTERS, values, strict=True)}
            labelled = counts["labelled"]
            precision = counts["confirmedFraud"] / labelled if labelled else None
            out.append({"ruleId": rule, **counts, "precision": precision})
        return out

    def labels(self, batch: int = 500) -> Iterator[str]:
        """Every label as one JSON text (read with HSCAN: no one huge reply)."""
        for _, value in self._redis.hscan_iter(keys.LABELS, count=batch):
            yield str(value)
