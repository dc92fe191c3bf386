"""test-client.py against the running local stack, as a user runs it after `make dev`."""

from __future__ import annotations

import re

import pytest

from tests.support.devstack_helpers import run_client
from tools.devstack import DevStack

pytestmark = pytest.mark.e2e

EXPECTED = {
    "large": ("large_transaction_detected", 1),
    "rapid": ("multiple_rapid_transactions_detected", 2),
    "location": ("unusual_location_change_detected", 1),
}


@pytest.mark.parametrize("scenario", list(EXPECTED))
def test_scenario_gets_exactly_its_alerts(stack: DevStack, scenario: str) -> None:
    result = run_client(stack, "--test", scenario, "--timeout", "30")
    assert result.returncode == 0, result.stdout + result.stderr
    alert_type, count = EXPECTED[scenario]
    assert f"PASS {scenario}:" in result.stdout
    printed = re.findall(r"^\s+ALERT (\S+)", result.stdout, flags=re.MULTILINE)
    assert printed == [alert_type] * count


def test_all_scenarios_with_the_live_stream(stack: DevStack) -> None:
    result = run_client(stack, "--test", "all", "--follow", "--count", "12", "--delay", "0.05")
    assert result.returncode == 0, result.stdout + result.stderr
    for scenario in ("large", "rapid", "location", "random"):
        assert re.search(rf"PASS {scenario}: .* seen live", result.stdout), scenario
    live = re.findall(r"^\[live [0-9:]+\] ALERT (\S+)", result.stdout, flags=re.MULTILINE)
    for alert_type in ("large_transaction_detected", "unusual_location_change_detected"):
        assert alert_type in live
    assert live.count("multiple_rapid_transactions_detected") >= 2
    assert "all passed" in result.stdout


def test_health_reports_every_service(stack: DevStack) -> None:
    result = run_client(stack, "--health")
    assert result.returncode == 0, result.stdout
    ok = re.findall(r"^OK\s+(\S+)", result.stdout, flags=re.MULTILINE)
    assert ok == ["transaction-service", "fraud-detection-service", "alert-service"]


def test_health_fails_when_a_service_is_unreachable(stack: DevStack) -> None:
    from tools.local_services import free_port

    result = run_client(stack, "--health", "--detector-url", f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 1
    assert re.search(r"^FAIL fraud-detection-service .*unreachable", result.stdout, re.MULTILINE)
