"""The rules in force, evaluated together, and the decision they add up to.

A `RuleSet` is an immutable list of `RuleSpec` (which rule type, its parameters, the
alert it raises, its severity, its score, its mode) with the decision thresholds and a
version. It comes from ``rules.yaml`` (`fraud_detection.rules.config`); a reload is one
swap of the `RuleSet` object, so a batch is always judged by one version.

How a decision is made:

- ``active`` rules that fire are the decision's reasons; their scores combine like
  independent probabilities (60 and 40 make 76, never more than 100);
- the combined score is ``decline`` at or above ``decline_at``, ``review`` at or above
  ``review_at``, ``approve`` below;
- an ``active`` rule with ``effect: allow`` that fires makes the decision ``approve``
  with score 0 and no other reason (so no alert): an allow-list beats every other rule;
- ``shadow`` rules are evaluated and counted but never alert or move the score;
  ``off`` rules are not evaluated.

A rule that raises does not fail the transaction: its error is recorded in the outcome
(and so on the decision) and the other rules still decide.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from fraud_common.failures import describe
from fraud_detection.rules.base import EvaluationContext, RuleHit, RuleParams
from fraud_detection.rules.registry import RULE_TYPES

log = logging.getLogger(__name__)

Mode = Literal["active", "shadow", "off"]
Effect = Literal["allow"]
DEFAULT_REVIEW_AT = 40
DEFAULT_DECLINE_AT = 80


@dataclass(frozen=True)
class RuleSpec:
    rule_id: str
    rule_type: str
    alert_type: str
    params: Any
    severity: str = "medium"
    score: int = 50
    mode: Mode = "active"
    effect: Effect | None = None

    def __post_init__(self) -> None:
        if self.rule_type not in RULE_TYPES:
            raise ValueError(f"unknown rule type {self.rule_type!r}")
        wanted = RULE_TYPES[self.rule_type].params
        if not isinstance(self.params, wanted):
            raise TypeError(f"{self.rule_type} needs {wanted.__name__}")
        if not 0 <= self.score <= 100:
            raise ValueError("score must be within 0..100")

    @property
    def lookback(self) -> timedelta:
        return RULE_TYPES[self.rule_type].lookback(self.params)

    def evaluate(self, context: EvaluationContext) -> RuleHit | None:
        finding = RULE_TYPES[self.rule_type].evaluate(context, self.params)
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
    shadow_hits: tuple[RuleHit, ...] = ()
    allowed_by: str | None = None
    """The id of the allow rule that fired, if any: the decision is then approve."""


@dataclass(frozen=True)
class Verdict:
    status: str  # approve | review | decline
    risk_score: int


class RuleSet:
    def __init__(
        self,
        specs: Iterable[RuleSpec],
        *,
        review_at: int = DEFAULT_REVIEW_AT,
        decline_at: int = DEFAULT_DECLINE_AT,
        version: str | None = None,
    ) -> None:
        self.specs = tuple(specs)
        self._evaluated = tuple(s for s in self.specs if s.mode != "off")
        self.review_at = review_at
        self.decline_at = decline_at
        if not 0 <= review_at <= decline_at <= 100:
            raise ValueError("thresholds must satisfy 0 <= review_at <= decline_at <= 100")
        alert_types = [s.alert_type for s in self.specs if s.mode == "active"]
        if len(set(alert_types)) != len(alert_types):  # an alert's id is (transaction, type)
            raise ValueError("two active rules raise the same alert type")
        rule_ids = [s.rule_id for s in self.specs]
        if len(set(rule_ids)) != len(rule_ids):
            raise ValueError("two rules have the same id")
        self._no_hits = self.verdict([])
        self.version = version or hashlib.sha256(repr(self._identity()).encode()).hexdigest()[:16]
        """A hash of what the rules are (of the file's content when loaded from one)."""

    def _identity(self) -> tuple[object, ...]:
        return (self.specs, self.review_at, self.decline_at)

    @property
    def evaluated(self) -> tuple[RuleSpec, ...]:
        """The rules that run (active and shadow)."""
        return self._evaluated

    @property
    def lookback(self) -> timedelta:
        """How far around an event time (event time) the rules need the user's window."""
        return max((s.lookback for s in self.evaluated), default=timedelta(0))

    @property
    def places_lookback(self) -> timedelta:
        """How far back the rules need the places a user has used (new_location)."""
        return max(
            (RULE_TYPES[s.rule_type].places_lookback(s.params) for s in self.evaluated),
            default=timedelta(0),
        )

    @property
    def retention(self) -> timedelta:
        """How long after a user's last transaction the rules still need the user's state."""
        return max(
            (RULE_TYPES[s.rule_type].retention_of(s.params) for s in self.evaluated),
            default=timedelta(0),
        )

    def specs_of_type(self, rule_type: str) -> tuple[RuleSpec, ...]:
        return tuple(s for s in self.evaluated if s.rule_type == rule_type)

    def evaluate(self, context: EvaluationContext) -> Outcome:
        hits: list[RuleHit] = []
        shadow: list[RuleHit] = []
        failures: list[RuleFailure] = []
        allowed_by: str | None = None
        for spec in self._evaluated:
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
            if hit is None:
                continue
            if spec.mode == "shadow":
                shadow.append(hit)
            elif spec.effect == "allow":
                allowed_by = allowed_by or spec.rule_id
            else:
                hits.append(hit)
        if allowed_by is not None:
            hits = []
        return Outcome(tuple(hits), tuple(failures), tuple(shadow), allowed_by)

    def verdict(self, hits: Iterable[RuleHit]) -> Verdict:
        """Scores combine like independent probabilities: 60 and 40 make 76, never > 100."""
        if hits == ():  # nearly every transaction: one shared (immutable) verdict
            return self._no_hits
        clean = 1.0
        for hit in hits:
            clean *= 1 - hit.score / 100
        score = round((1 - clean) * 100)
        if score >= self.decline_at:
            status = "decline"
        elif score >= self.review_at:
            status = "review"
        else:
            status = "approve"
        return Verdict(status=status, risk_score=score)


def params_of(rule_type: str, **values: Any) -> RuleParams:
    """The parameters of ``rule_type`` from plain values (validated)."""
    return RULE_TYPES[rule_type].params.model_validate(values)
