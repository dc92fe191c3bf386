"""List match: the transaction's ``field`` (userId, location, currency or transactionId)
is on the list ``list`` (see `fraud_detection.lists`; the API is ``/api/v1/lists``).

The lookup happens before evaluation, once per batch (`fraud_detection.lists.listed_pairs`),
and its answer is in `EvaluationContext.listed` as ``(list, field)`` pairs, so two rules
on different lists, or on one list with different fields, never see each other's hits.
Values compare exactly as the transaction carries them (the currency upper-cased by the
schema, the location as sent). With ``effect: allow`` on the rule, a hit approves the
transaction and silences its other rules (`fraud_detection.rules.ruleset`).
"""

from __future__ import annotations

from pydantic import Field

from fraud_detection.lists import LIST_NAME_PATTERN, ListField
from fraud_detection.rules.base import EvaluationContext, Finding, RuleParams, RuleType

ALERT_TYPE = "list_match_detected"


class Params(RuleParams):
    list: str = Field(pattern=LIST_NAME_PATTERN, description="the list's name, [a-z0-9_-]{1,64}")
    field: ListField = Field(description="the transaction field whose value is looked up")


def evaluate(context: EvaluationContext, params: Params) -> Finding | None:
    if (params.list, params.field) not in context.listed:
        return None
    value = str(getattr(context.transaction, params.field))
    return Finding(
        details={"list": params.list, "field": params.field, "value": value},
        message=f"{params.field} {value!r} is on the list {params.list!r}",
    )


RULE = RuleType(name="list_match", params=Params, evaluate=evaluate, alert_type=ALERT_TYPE)
