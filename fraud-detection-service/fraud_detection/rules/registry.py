"""Every rule type, by the name ``rules.yaml`` gives it. Adding a rule type is one module
in this package (see `fraud_detection.rules.base.RuleType`) and one line here."""

from __future__ import annotations

from fraud_detection.rules import (
    amount_velocity,
    card_testing,
    large_amount,
    list_match,
    location_change,
    new_location,
    rapid_transactions,
)
from fraud_detection.rules.base import RuleType

RULE_TYPES: dict[str, RuleType] = {
    rule.name: rule
    for rule in (
        large_amount.RULE,
        rapid_transactions.RULE,
        location_change.RULE,
        list_match.RULE,
        amount_velocity.RULE,
        card_testing.RULE,
        new_location.RULE,
    )
}
