"""Each service's image installs the same pinned versions as the top-level requirements."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SERVICES = ["transaction-service", "fraud-detection-service", "alert-service"]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;#]+)")


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path) -> dict[str, str]:
    """``{normalized name: version}``; fails on a requirement that is not pinned."""
    result: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-r "):
            continue
        match = PIN.match(line)
        assert match, f"{path.name}:{number}: {raw!r} is not pinned with =="
        name = normalize(match.group(1))
        assert name not in result, f"{path.name}:{number}: {name} listed twice"
        result[name] = match.group(3)
    return result


@pytest.mark.parametrize("service", SERVICES)
def test_service_pins_equal_the_top_level_pins(service: str) -> None:
    top = pins(REPO / "requirements.txt")
    own = pins(REPO / service / "requirements.txt")
    assert own, f"{service}/requirements.txt is empty"
    for name, version in own.items():
        assert name in top, f"{service} requires {name}, which requirements.txt does not pin"
        assert version == top[name], (
            f"{service} pins {name}=={version}, requirements.txt {name}=={top[name]}"
        )


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_has_its_server_and_clients(service: str) -> None:
    own = pins(REPO / service / "requirements.txt")
    for needed in ("gunicorn", "flask", "confluent-kafka", "redis", "pydantic-settings"):
        assert needed in own, f"{service}/requirements.txt lacks {needed}"


def test_top_level_requirements_cover_every_service() -> None:
    top = set(pins(REPO / "requirements.txt"))
    used = set().union(*(pins(REPO / s / "requirements.txt") for s in SERVICES))
    unused = top - used - {"requests"}  # requests: also what test-client.py needs
    assert not unused, f"pinned at the top but used by no service: {sorted(unused)}"


def test_dev_requirements_include_the_runtime_and_pin_everything() -> None:
    text = (REPO / "requirements-dev.txt").read_text()
    assert "-r requirements.txt" in text
    pins(REPO / "requirements-dev.txt")  # every line pinned
