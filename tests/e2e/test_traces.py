"""Trace context from the POST to the alert and onto the log lines, through the real
stack (gunicorn services, Tansu, Redis): the transaction-service continues the POST's
W3C ``traceparent`` (or starts a trace, also for a malformed one), the detector reads it
from the Kafka headers, the alert carries ``traceId``, and every JSON log line of the
three services about that transaction carries the same ``trace_id``."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import requests

from fraud_common import tracing
from tools.devstack import DevStack
from tools.local_services import wait_for

pytestmark = pytest.mark.e2e

GIVEN_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
GIVEN = f"00-{GIVEN_TRACE}-00f067aa0ba902b7-01"
MALFORMED = f"00-{GIVEN_TRACE.upper()}-00f067aa0ba902b7-01"
SERVICES = ("transaction-service", "fraud-detection-service", "alert-service")


def _large(user: str) -> dict[str, str]:
    return {"userId": user, "amount": "25000.00", "currency": "USD", "location": "Berlin"}


def _log_lines(stack: DevStack) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    for path in stack.log_dir.glob("*.log"):
        for text in path.read_text(errors="replace").splitlines():
            if text.startswith("{"):
                try:
                    lines.append(json.loads(text))
                except ValueError:
                    continue  # a line cut by a concurrent write
    return lines


def _about(line: dict[str, Any], transaction_id: str) -> bool:
    return (
        line.get("transaction_id") == transaction_id
        or transaction_id in (line.get("transaction_ids") or [])
        or transaction_id in str(line.get("message", ""))
    )


def _alerts_of(stack: DevStack, user: str) -> list[dict[str, Any]]:
    response = requests.get(
        f"{stack.service('alert').url}/api/v1/alerts", params={"userId": user}, timeout=10
    )
    response.raise_for_status()
    return list(response.json()["alerts"])


def _assert_traced(stack: DevStack, user: str, transaction_ids: list[str], trace_id: str) -> None:
    """The alerts of ``transaction_ids`` carry ``trace_id``, and so does every log line
    about them; each service wrote at least one such line for each."""
    alerts: list[dict[str, Any]] = []

    def alerted() -> bool:
        alerts[:] = _alerts_of(stack, user)
        return {a["transaction"]["transactionId"] for a in alerts} >= set(transaction_ids)

    wait_for(alerted, timeout=60, interval=0.2, what="the alerts")
    assert [a["traceId"] for a in alerts] == [trace_id] * len(alerts)
    about: dict[str, list[dict[str, Any]]] = {}

    def logged() -> bool:
        lines = _log_lines(stack)
        for tid in transaction_ids:
            about[tid] = [line for line in lines if _about(line, tid)]
        return all(
            {line.get("service") for line in found} >= set(SERVICES) for found in about.values()
        )

    wait_for(logged, timeout=30, interval=0.2, what="log lines of all three services")
    for tid, found in about.items():
        untraced = [line for line in found if line.get("trace_id") != trace_id]
        assert not untraced, (tid, untraced)
        messages = " | ".join(str(line["message"]) for line in found)
        assert "FRAUD ALERT" in messages and "ALERT large_transaction_detected" in messages


@pytest.mark.parametrize(
    ("sent", "continued"),
    [(GIVEN, True), (None, False), (MALFORMED, False)],
    ids=["given", "absent", "malformed"],
)
def test_trace_id_from_post_to_alert_and_log_lines(
    stack: DevStack, sent: str | None, continued: bool
) -> None:
    user = f"e2e-trace-{uuid.uuid4().hex[:8]}"
    headers = {} if sent is None else {tracing.HEADER: sent}
    response = requests.post(
        f"{stack.service('transaction').url}/api/v1/transactions",
        json=_large(user),
        headers=headers,
        timeout=10,
    )
    assert response.status_code == 201, response.text
    answered = tracing.parse(response.headers.get(tracing.HEADER))
    assert answered is not None, response.headers
    if continued:
        assert answered.trace_id == GIVEN_TRACE
        assert answered.parent_id != "00f067aa0ba902b7"  # the service's own span
    else:
        assert answered.trace_id != GIVEN_TRACE.lower()
    _assert_traced(stack, user, [response.json()["transactionId"]], answered.trace_id)


def test_a_batch_is_one_trace(stack: DevStack) -> None:
    user = f"e2e-trace-batch-{uuid.uuid4().hex[:8]}"
    response = requests.post(
        f"{stack.service('transaction').url}/api/v1/transactions/batch",
        json={"transactions": [_large(user), _large(user)]},
        headers={tracing.HEADER: GIVEN},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    ids = response.json()["transactionIds"]
    assert len(ids) == 2
    _assert_traced(stack, user, ids, GIVEN_TRACE)


def test_an_error_response_still_names_its_trace(stack: DevStack) -> None:
    response = requests.post(
        f"{stack.service('transaction').url}/api/v1/transactions",
        json={"userId": "x"},
        headers={tracing.HEADER: GIVEN},
        timeout=10,
    )
    assert response.status_code == 400
    answered = tracing.parse(response.headers.get(tracing.HEADER))
    assert answered is not None and answered.trace_id == GIVEN_TRACE
