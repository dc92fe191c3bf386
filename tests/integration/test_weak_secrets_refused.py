"""A service started outside development with .env.example's placeholder secrets does not
come up: gunicorn exits, and its log names the variable but never the secret. The same
start with APP_ENV=development serves. Real gunicorn processes, as the stack runs them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tools.devstack import ServiceProcess

pytestmark = pytest.mark.integration

PLACEHOLDER = "change-me-api-key"


@pytest.mark.parametrize("service", ["transaction", "alert"])
def test_a_placeholder_secret_is_refused_outside_development(
    service: str, kafka_bootstrap: str, redis_url: str, tmp_path: Path
) -> None:
    settings: dict[str, str | None] = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "REDIS_URL": redis_url,
        "API_KEYS": PLACEHOLDER,
        "APP_ENV": "production",
        "LOG_LEVEL": "WARNING",
    }
    refused = ServiceProcess.on_free_port(service, settings, log_dir=tmp_path / "production")
    process = refused.start().process
    assert process is not None
    try:
        returncode = process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{service} started with a placeholder API key: {refused.log_tail()}")
    finally:
        refused.stop()
    output = refused.log_path.read_text(errors="replace")
    assert returncode != 0
    assert "refusing to start with weak secrets" in output, output[-3000:]
    assert "API_KEYS (entry 1) is a placeholder" in output
    assert PLACEHOLDER not in output

    development = ServiceProcess.on_free_port(
        service, {**settings, "APP_ENV": "development"}, log_dir=tmp_path / "development"
    )
    try:
        development.start().wait_serving(60)
    finally:
        development.stop()
