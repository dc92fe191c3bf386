"""Post simulated transactions to the transaction-service at a rate, and collect what
came out: each transaction's decision, then its alerts at the alert-service.

Batches (``POST /api/v1/transactions/batch``) when the rate is high, single POSTs
otherwise; every request carries an ``Idempotency-Key`` derived from the plan, so a
retry after a 503 or a lost connection is safe (it returns the first response).
Only the standard library and ``requests``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import requests

from tools.simulation.traffic import SimTransaction

MAX_BATCH = 500
RETRIES = 5


@dataclass
class Api:
    url: str
    alerts_url: str
    api_key: str | None = None
    timeout: float = 10.0

    def __post_init__(self) -> None:
        self.url = self.url.rstrip("/")
        self.alerts_url = self.alerts_url.rstrip("/")
        self.session = requests.Session()
        if self.api_key:
            self.session.headers["X-API-Key"] = self.api_key

    def post(self, path: str, body: dict[str, Any], key: str) -> dict[str, Any]:
        """POST with retries on 503 and connection errors (same Idempotency-Key)."""
        delay = 0.2
        for attempt in range(RETRIES):
            try:
                response = self.session.post(
                    f"{self.url}{path}", json=body, headers={"Idempotency-Key": key}, timeout=30
                )
            except requests.ConnectionError:
                if attempt == RETRIES - 1:
                    raise
            else:
                if response.status_code == 201:
                    result: dict[str, Any] = response.json()
                    return result
                if response.status_code not in (409, 503) or attempt == RETRIES - 1:
                    raise RuntimeError(f"POST {path}: {response.status_code} {response.text}")
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
        raise RuntimeError(f"POST {path}: no answer")  # not reached

    def decision(self, transaction_id: str) -> dict[str, Any] | None:
        response = self.session.get(
            f"{self.url}/api/v1/transactions/{transaction_id}", timeout=self.timeout
        )
        if response.status_code != 200:
            return None
        body: dict[str, Any] = response.json()
        return None if body.get("status") == "pending" else body

    def alerts(self, user_id: str) -> list[dict[str, Any]]:
        response = self.session.get(
            f"{self.alerts_url}/api/v1/alerts",
            params={"userId": user_id, "limit": "1000"},
            timeout=self.timeout,
        )
        response.raise_for_status()
        return list(response.json()["alerts"])


def batch_size_for(rate: float) -> int:
    """About ten requests a second; one transaction per request below 20/s."""
    return 1 if rate < 20 else max(1, min(MAX_BATCH, int(rate / 10)))


def send(
    api: Api,
    transactions: Sequence[SimTransaction],
    *,
    rate: float,
    key_prefix: str,
    progress: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
) -> tuple[list[str], float]:
    """Post in order at ``rate`` per second; the service's transactionId of each (in
    order) and the seconds it took."""
    size = batch_size_for(rate)
    ids: list[str] = []
    started = last_report = time.monotonic()
    for number, first in enumerate(range(0, len(transactions), size)):
        due = started + first / rate
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)  # pacing to the asked rate, not waiting for a condition
        chunk = transactions[first : first + size]
        key = f"{key_prefix}:{number}"
        if size == 1:
            ids.append(api.post("/api/v1/transactions", chunk[0].body, key)["transactionId"])
        else:
            answer = api.post(
                "/api/v1/transactions/batch", {"transactions": [t.body for t in chunk]}, key
            )
            ids.extend(answer["transactionIds"])
        now = time.monotonic()
        if now - last_report >= 2.0:
            last_report = now
            progress(
                f"simulate: sent {len(ids):,}/{len(transactions):,} "
                f"({len(ids) / (now - started):,.0f}/s)"
            )
    return ids, time.monotonic() - started


def wait_for_decisions(
    api: Api, ids: Sequence[str], *, timeout: float
) -> dict[str, dict[str, Any]]:
    """Each transaction's decision, polled until all are decided or ``timeout`` s."""
    decided: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    pending = list(ids)
    while pending and time.monotonic() < deadline:
        still = []
        for transaction_id in pending:
            found = api.decision(transaction_id)
            if found is None:
                still.append(transaction_id)
            else:
                decided[transaction_id] = found
        pending = still
        if pending:
            time.sleep(0.5)
    return decided


def wait_for_alerts(
    api: Api,
    decided: dict[str, dict[str, Any]],
    users: Sequence[str],
    *,
    timeout: float,
) -> list[dict[str, Any]]:
    """The alert-service's alerts on the ``decided`` transactions, once it holds every
    alert their decisions name (or after ``timeout`` s: what it holds then)."""
    owners = {d["transactionId"]: d["userId"] for d in decided.values() if "userId" in d}
    expected = {a["alertId"] for d in decided.values() for a in d.get("alerts", ())}
    watched = sorted({owners.get(t, "") for t, d in decided.items() if d.get("alerts")} - {""})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        held = {a["alertId"] for user in watched for a in api.alerts(user)}
        if expected <= held:
            break
        time.sleep(0.5)
    return [
        alert
        for user in users
        for alert in api.alerts(user)
        if alert.get("transaction", {}).get("transactionId") in decided
    ]
