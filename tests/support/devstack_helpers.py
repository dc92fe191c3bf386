"""Helpers for tests that run the whole local stack (`tools.devstack.DevStack`).

`start_test_stack` starts a stack on free ports with its own Redis (append-only, so a fault
test can restart it) and, unless ``KAFKA_BOOTSTRAP_SERVERS`` names an existing broker,
its own Tansu broker; topic and consumer-group names carry a uuid so that runs never
share them. The stack is supervised as under ``make dev``: a test that kills a service
waits for it to come back with `DevStack.wait_restarted` instead of starting it itself.
`warm_test_stack` is the same as a context: started, warmed up, stopped after.
`run_client` runs ``test-client.py`` against a stack as a user would.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

from tools.devstack import REPO, DevStack
from tools.local_services import wait_for


def start_test_stack(state_dir: Path, **kwargs: Any) -> DevStack:
    """A started stack (the caller stops it)."""
    suffix = uuid.uuid4().hex[:10]
    existing = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or None
    extra_env: dict[str, str | None] = {"API_KEYS": None}  # an open API, whatever the shell has
    extra_env.update(kwargs.pop("extra_env", {}))
    stack = DevStack.on_free_ports(
        state_dir=state_dir,
        kafka_bootstrap_servers=existing,
        transactions_topic=f"transactions-{suffix}",
        alerts_topic=f"fraud-alerts-{suffix}",
        extra_env=extra_env,
        consumer_group_suffix=suffix if existing else None,  # a shared broker: own groups
        **kwargs,
    )
    return stack.start()


@contextmanager
def warm_test_stack(state_dir: Path, **kwargs: Any) -> Iterator[DevStack]:
    """`start_test_stack`, its pipeline warmed up (`DevStack.warm_up`), stopped on exit."""
    running = start_test_stack(state_dir, **kwargs)
    try:
        running.warm_up()
        yield running
    finally:
        running.stop()


def client_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "API_KEY"}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_client(
    stack: DevStack, *args: str, timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    """``python test-client.py --url ... --alerts-url ... <args>``; output kept for asserts
    and printed (pytest shows it when a test fails)."""
    command = [
        sys.executable,
        str(REPO / "test-client.py"),
        "--url",
        stack.service("transaction").url,
        "--alerts-url",
        stack.service("alert").url,
        "--detector-url",
        stack.service("detector").url,
        *args,
    ]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, env=client_env(), cwd=REPO
    )
    print(f"$ {' '.join(command)}\n{result.stdout}\n{result.stderr}")
    return result


StoredAlert = tuple[str, str, str]
"""(transactionId, alertType, alertId) of an alert the alert-service stored."""


def stored_alerts(alert_url: str, users: Iterable[str]) -> list[StoredAlert]:
    """Every alert the alert-service holds for ``users``, through its API."""
    session = requests.Session()
    found: list[StoredAlert] = []
    for user in users:
        response = session.get(
            f"{alert_url}/api/v1/alerts", params={"userId": user, "limit": "100"}, timeout=10
        )
        response.raise_for_status()
        found.extend(
            (a["transaction"]["transactionId"], a["alertType"], a["alertId"])
            for a in response.json()["alerts"]
        )
    return found


def wait_for_stored_alerts(
    alert_url: str, users: Iterable[str], expected: set[tuple[str, str]], *, timeout: float = 60
) -> list[StoredAlert]:
    """The stored alerts of ``users`` once every expected (transactionId, alertType) is
    among them (more may be: the caller asserts there are none)."""
    wanted = list(users)
    wait_for(
        lambda: {(t, k) for t, k, _ in stored_alerts(alert_url, wanted)} >= expected,
        timeout=timeout,
        interval=1.0,
        what="every expected alert stored",
    )
    return stored_alerts(alert_url, wanted)
