"""The rules in force, evaluated together, and the verdict they add up to.

A `RuleSet` is an immutable list of `RuleSpec` (which rule type, its numbers, the
alert it raises, its severity and risk score). It is built from settings today; the
`RULE_TYPES` registry lets the same specs come from a file later (``rules.yaml``), and
a reload is then one swap of the `RuleSet` object. Its `version` names the rules a
decision was made by.

A rule that raises does not fail the transaction: its error is recorded in the
outcome (and so on the decision) and the other rules still decide.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from typing import Any

from fraud_common.failures import describe
from fraud_detection.rules import large_amount, location_change, rapid_transactions
from fraud_detection.rules.base import EvaluationContext, RuleFunction, RuleHit
from fraud_detection.settings import DetectorSettings

log = logging.getLogger(__name__)

RULE_TYPES: dict[str, tuple[RuleFunction, type]] = {
    "large_amount": (large_amount.evaluate, large_amount.Params),
    "rapid_transactions": (rapid_transactions.evaluate, rapid_transactions.Params),
    "location_change": (location_change.evaluate, location_change.Params),
}
"""Rule type name -> (pure evaluate function, its parameter class)."""


@dataclass(frozen=True)
class RuleSpec:
    rule_id: str
    rule_type: str
    alert_type: str
    params: Any
    severity: str = "medium"
    score: int = 50
    enabled: bool = True

    def __post_init__(self) -> None:
        if self.rule_type not in RULE_TYPES:
            raise ValueError(f"unknown rule type {self.rule_type!r}")
        if not isinstance(self.params, RULE_TYPES[self.rule_type][1]):
            raise TypeError(f"{self.rule_type} needs {RULE_TYPES[self.rule_type][1].__name__}")
        if not 0 <= self.score <= 100:
            raise ValueError("score must be within 0..100")

    def evaluate(self, context: EvaluationContext) -> RuleHit | None:
        finding = RULE_TYPES[self.rule_type][0](context, self.params)
        if finding is None:
            return None
        return RuleHit(
            rule_id=self.rule_id,
            alert_type=self.alert_type,
            severity=self.severity,
            score=self.score,
            details=finding.details,
            message=finding.message,
        )


@dataclass(frozen=True)
class RuleFailure:
    """A rule that raised on one transaction."""

    rule_id: str
    error: str


@dataclass(frozen=True)
class Outcome:
    """What the rules found for one transaction."""

    hits: tuple[RuleHit, ...]
    failures: tuple[RuleFailure, ...] = ()


@dataclass(frozen=True)
class Verdict:
    status: str  # approve | review (decline is reserved for scored rules to come)
    risk_score: int


class RuleSet:
    def __init__(self, specs: Iterable[RuleSpec]) -> None:
        self.specs = tuple(specs)
        alert_types = [s.alert_type for s in self.specs]
        if len(set(alert_types)) != len(alert_types):
            raise ValueError("two rules raise the same alert type")
        rule_ids = [s.rule_id for s in self.specs]
        if len(set(rule_ids)) != len(rule_ids):
            raise ValueError("two rules have the same id")

    @cached_property
    def version(self) -> str:
        """A hash of what the rules are: equal rule sets share it, any change moves it."""
        return hashlib.sha256(repr(self.specs).encode()).hexdigest()[:16]

    @classmethod
    def from_settings(cls, settings: DetectorSettings) -> RuleSet:
        return cls(
            [
                RuleSpec(
                    "large-amount",
                    "large_amount",
                    large_amount.ALERT_TYPE,
                    large_amount.Params(threshold_usd=settings.large_amount_threshold_usd),
                    severity="high",
                    score=60,
                ),
                RuleSpec(
                    "rapid-transactions",
                    "rapid_transactions",
                    rapid_transactions.ALERT_TYPE,
                    rapid_transactions.Params(
                        max_count=settings.rapid_max_count,
                        window_seconds=settings.rapid_window_seconds,
                    ),
                    severity="medium",
                    score=40,
                ),
                RuleSpec(
                    "location-change",
                    "location_change",
                    location_change.ALERT_TYPE,
                    location_change.Params(
                        min_distance_km=settings.location_min_distance_km,
                        max_speed_kmh=settings.location_max_speed_kmh,
                        name_window_seconds=settings.location_name_window_seconds,
                    ),
                    severity="high",
                    score=70,
                ),
            ]
        )

    @property
    def lookback(self) -> timedelta:
        """How far back (event time) the rules need the user's recent transactions."""
        windows = [
            s.params.lookback for s in self.specs if s.enabled and hasattr(s.params, "lookback")
        ]
        return max(windows, default=timedelta(0))

    def evaluate(self, context: EvaluationContext) -> Outcome:
        hits: list[RuleHit] = []
        failures: list[RuleFailure] = []
        for spec in self.specs:
            if not spec.enabled:
                continue
            try:
                hit = spec.evaluate(context)
            except Exception as exc:  # one rule's bug must not cost the others their say
                log.exception(
                    "rule raised",
                    extra={
                        "rule_id": spec.rule_id,
                        "transaction_id": context.transaction.transactionId,
                    },
                )
                failures.append(RuleFailure(spec.rule_id, describe(exc)))
                continue
            if hit is not None:
                hits.append(hit)
        return Outcome(tuple(hits), tuple(failures))

    @staticmethod
    def verdict(hits: Iterable[RuleHit]) -> Verdict:
        """Scores combine like independent probabilities: 60 and 40 make 76, never > 100."""
        clean = 1.0
        fired = False
        for hit in hits:
            fired = True
            clean *= 1 - hit.score / 100
        score = round((1 - clean) * 100)
        return Verdict(status="review" if fired else "approve", risk_score=score)
