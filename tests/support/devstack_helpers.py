"""Helpers for tests that run the whole local stack (`tools.devstack.DevStack`).

`start_test_stack` starts a stack on free ports with its own Redis (append-only, so a fault
test can restart it) and, unless ``KAFKA_BOOTSTRAP_SERVERS`` names an existing broker,
its own Tansu broker; topic and consumer-group names carry a uuid so that runs never
share them. The stack is supervised as under ``make dev``: a test that kills a service
waits for it to come back with `DevStack.wait_restarted` instead of starting it itself.
`run_client` runs ``test-client.py`` against a stack as a user would.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from tools.devstack import REPO, DevStack


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
