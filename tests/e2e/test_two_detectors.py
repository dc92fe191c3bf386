"""Two detector processes in fraud-detection-group: every transaction decided, once."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tools.devstack import DevStack
from tools.local_services import wait_for

pytestmark = pytest.mark.e2e


def test_every_transaction_is_decided_by_the_group(stack: DevStack) -> None:
    detector = stack.service("detector")
    assert len(detector.pids()) == 3, "a gunicorn master and two detector workers"
    base = stack.service("transaction").url
    users = [f"e2e-group-{uuid.uuid4().hex[:8]}-{i}" for i in range(40)]

    def post(index: int) -> str:
        response = requests.post(
            f"{base}/api/v1/transactions",
            json={
                "userId": users[index % len(users)],
                "amount": "12.50",
                "currency": "USD",
                "location": "Berlin",
            },
            timeout=10,
        )
        assert response.status_code == 201, response.text
        return str(response.json()["transactionId"])

    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(post, range(200)))
    assert len(set(ids)) == 200

    pending = set(ids)
    statuses: dict[str, str] = {}
    session = requests.Session()

    def all_decided() -> bool:
        for transaction_id in list(pending):
            record = session.get(f"{base}/api/v1/transactions/{transaction_id}", timeout=10)
            status = record.json().get("status")
            if status != "pending":
                statuses[transaction_id] = status
                pending.discard(transaction_id)
        return not pending

    started = time.monotonic()
    wait_for(all_decided, timeout=60, interval=0.2, what="every transaction to be decided")
    print(f"200 transactions over 40 users decided {time.monotonic() - started:.1f} s after")
    assert set(statuses.values()) == {"approve"}  # 5 per user, same place: no rule fires
