"""``Prefer`` parsing (RFC 7240) and the 201 body with the decision added."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from fraud_common.schemas import Decision, Reason
from transaction_service.inline_decision import (
    MAX_WAIT_SECONDS,
    inline_view,
    requested_wait,
    with_field,
)


@pytest.mark.parametrize(
    ("headers", "wait"),
    [
        (["wait=5"], 5),
        (["respond-async, wait=3"], 3),
        (["respond-async", "wait=4"], 4),  # several headers are one list
        (["WAIT = 2"], 2),  # names are case-insensitive; BWS around "="
        (['wait="7"'], 7),  # a quoted-string value
        (["wait=2; foo=bar"], 2),  # parameters are ignored
        (['foo="a, wait=9", wait=1'], 1),  # a comma inside quotes separates nothing
        (["wait=0"], 0),
        (["wait=007"], 7),
        (["wait=11"], MAX_WAIT_SECONDS),
        (["wait=" + "9" * 5000], MAX_WAIT_SECONDS),
        (["wait=1", "wait=6"], 1),  # only the first occurrence counts
        (["wait=x", "wait=6"], None),  # ... and an invalid first one is ignored
        ([], None),
        ([""], None),
        (["respond-async"], None),
        (["handling=lenient"], None),
        (["wait"], None),
        (["wait="], None),
        (['wait=""'], None),
        (["wait=-1"], None),
        (["wait=1.5"], None),
        (["wait=abc"], None),
        (["wait=\u0663"], None),  # an Arabic-Indic digit is not DIGIT
        (["waiting=3"], None),
    ],
)
def test_requested_wait(headers: list[str], wait: int | None) -> None:
    assert requested_wait(headers) == wait


@pytest.mark.parametrize(
    "body",
    ['{"status":"success","transactionId":"t"}', '{"a": 1}\n', "{}"],
)
def test_with_field_adds_one_member_and_keeps_the_rest(body: str) -> None:
    added = with_field(body, "decision", {"status": "pending"})

    assert json.loads(added) == {**json.loads(body), "decision": {"status": "pending"}}
    assert added.startswith(body.rstrip()[:-1])


def test_with_field_refuses_what_is_not_an_object() -> None:
    with pytest.raises(ValueError):
        with_field("[1]", "decision", {})


def test_inline_view_leaves_out_details_and_adds_the_error_of_an_error() -> None:
    reason = Reason(
        ruleId="large-amount",
        alertType="large_transaction_detected",
        severity="high",
        score=60,
        message="m",
        details={"threshold": "10000"},
    )
    decided = Decision(
        transactionId="t",
        status="review",
        riskScore=60,
        reasons=[reason],
        rulesVersion="v1",
        evaluatedAt=datetime.now(UTC),
    )
    failed = Decision(
        transactionId="t", status="error", error="no rate", evaluatedAt=datetime.now(UTC)
    )

    assert inline_view(decided) == {
        "status": "review",
        "riskScore": 60,
        "reasons": [
            {
                "ruleId": "large-amount",
                "alertType": "large_transaction_detected",
                "severity": "high",
                "score": 60,
                "message": "m",
            }
        ],
        "rulesVersion": "v1",
    }
    assert inline_view(failed) == {
        "status": "error",
        "riskScore": None,
        "reasons": [],
        "rulesVersion": None,
        "error": "no rate",
    }
