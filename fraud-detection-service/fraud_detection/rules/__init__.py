"""Fraud rules: one module per rule type (pure functions) and the `RuleSet` running them."""

from fraud_detection.rules.base import (
    EvaluationContext,
    Finding,
    Place,
    PreviousTransaction,
    RuleHit,
)
from fraud_detection.rules.registry import RULE_TYPES
from fraud_detection.rules.ruleset import (
    Outcome,
    RuleFailure,
    RuleSet,
    RuleSpec,
    Verdict,
)

__all__ = [
    "RULE_TYPES",
    "EvaluationContext",
    "Finding",
    "Outcome",
    "Place",
    "PreviousTransaction",
    "RuleFailure",
    "RuleHit",
    "RuleSet",
    "RuleSpec",
    "Verdict",
]
