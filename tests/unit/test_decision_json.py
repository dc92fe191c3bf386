"""`Decision.to_json` writes a decision without reasons directly: the same bytes as the
general path (`dumps` of ``model_dump``), whichever optionals are set."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import product

import pytest

from fraud_common.jsonutil import dumps
from fraud_common.schemas import Decision, Reason, RuleError

AT = datetime(2026, 12, 2, 1, 2, 3, 456789, tzinfo=UTC)


def general(decision: Decision) -> str:
    return dumps(decision.model_dump(mode="json", exclude_none=True))


def test_the_fields_are_the_ones_the_direct_text_writes_in_its_order() -> None:
    # A new field must be added to to_json's direct text too (this fails until it is).
    assert tuple(Decision.model_fields) == (
        "transactionId",
        "status",
        "riskScore",
        "reasons",
        "rulesVersion",
        "ruleErrors",
        "shadowHits",
        "allowedBy",
        "error",
        "evaluatedAt",
        "traceId",
    )


@pytest.mark.parametrize(
    ("score", "version", "allowed", "error", "trace"),
    list(product((None, 0, 100), (None, "v1"), (None, "allow"), (None, "x"), (None, "a" * 32))),
)
def test_every_combination_of_optionals_gives_the_general_bytes(
    score: int | None,
    version: str | None,
    allowed: str | None,
    error: str | None,
    trace: str | None,
) -> None:
    decision = Decision(
        transactionId="t-1",
        status="approve" if error is None else "error",
        riskScore=score,
        rulesVersion=version,
        allowedBy=allowed,
        error=error,
        evaluatedAt=AT,
        traceId=trace,
    )
    assert decision.to_json() == general(decision)


def test_strings_needing_escapes_and_non_ascii_give_the_general_bytes() -> None:
    decision = Decision(
        transactionId='q"\\\n\t\x00\x1f\u2028é€😀',
        status="error",
        error='ünïcode "quoted" \\ and \r\n\b\f',
        evaluatedAt=AT,
    )
    assert decision.to_json() == general(decision)
    assert "é€😀" in decision.to_json()  # not ensure_ascii


def test_reasons_errors_and_shadow_hits_take_the_general_path() -> None:
    reason = Reason(ruleId="r", alertType="a", severity="high", score=50, details={"n": 1})
    for extra in (
        {"reasons": [reason]},
        {"shadowHits": [reason]},
        {"ruleErrors": [RuleError(ruleId="r", error="boom")]},
    ):
        decision = Decision(transactionId="t-1", status="review", evaluatedAt=AT, **extra)
        assert decision.to_json() == general(decision)
