"""docker-compose.yml, the Dockerfiles and .env.example, checked without a Docker engine.

The compose file is validated by Debian's ``docker-compose config`` (``.ci/run`` installs
it) against the Compose specification, with the variables of .env.example; the rest is
read statically: what each image runs must be what the local stack runs, ports follow
the contract, and every setting is documented and reaches its container.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from alert_service.settings import AlertServiceSettings
from fraud_common.settings import ServiceSettings
from fraud_detection.settings import DetectorSettings
from tools.devstack import SERVICES, ServiceSpec, service_command
from transaction_service.settings import TransactionServiceSettings

REPO = Path(__file__).resolve().parents[2]
SETTINGS: dict[str, type[ServiceSettings]] = {
    "transaction-service": TransactionServiceSettings,
    "fraud-detection-service": DetectorSettings,
    "alert-service": AlertServiceSettings,
}
# Set by the compose file itself (container addresses), not taken from .env.
STRUCTURAL = {"kafka_bootstrap_servers", "redis_url", "port"}
# Documented in .env.example but deliberately not forwarded by compose, with the reason.
NOT_FORWARDED = {
    "fx_rates_path": "a file path: needs a volume mounted into the containers",
    "smtp_username": "Mailpit needs no login; add it for a real SMTP server",
    "smtp_password": "Mailpit needs no login; add it for a real SMTP server",
}
# Compose defaults that differ from the code's on purpose: e-mail goes to Mailpit.
# Compose runs Apache Kafka, which answers a fetch as soon as data arrives: Kafka's own
# 500 ms fetch wait there, the code's 10 ms for Tansu (fraud_common.kafka.config).
COMPOSE_OVERRIDES = {"smtp_host", "smtp_port", "email_to", "kafka_fetch_wait_max_ms"}
PINNED_PYTHON = re.compile(r"^FROM python:3\.11\.\d+-slim(-\w+)?(@sha256:[0-9a-f]{64})?( AS \w+)?$")


def env_example() -> dict[str, str]:
    values = {}
    for line in (REPO / ".env.example").read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((REPO / "docker-compose.yml").read_text()))


def dockerfile(service: ServiceSpec) -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = (REPO / service.directory / "Dockerfile").read_text()
    joined = re.sub(r"\\\n\s*", " ", text)
    return [line.strip() for line in joined.splitlines() if line.strip() and line[0] != "#"]


# -- the compose file against the Compose specification -------------------------------


def run_compose_config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip(
            "Debian's docker-compose is not installed (apt-get install docker-compose; "
            ".ci/run installs it): the compose file was not validated"
        )
    return subprocess.run(
        [binary, "-f", "docker-compose.yml", "config", "-q"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def clean_env() -> dict[str, str]:
    """The process environment without anything compose would interpolate."""
    names = set(re.findall(r"\$\{(\w+)", (REPO / "docker-compose.yml").read_text()))
    return {k: v for k, v in os.environ.items() if k not in names}


def test_compose_file_is_valid_with_the_example_env() -> None:
    result = run_compose_config({**clean_env(), **env_example()})
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("secret", ["REDIS_PASSWORD", "API_KEYS", "WEBHOOK_SECRET"])
def test_compose_refuses_to_run_without_a_secret(secret: str) -> None:
    env = {k: v for k, v in {**clean_env(), **env_example()}.items() if k != secret}
    result = run_compose_config(env)
    assert result.returncode != 0
    assert secret in result.stderr and "set it in .env" in result.stderr


# -- Dockerfiles -------------------------------------------------------------------


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
def test_dockerfile_runs_what_the_local_stack_runs(service: ServiceSpec) -> None:
    lines = dockerfile(service)
    froms = [line for line in lines if line.startswith("FROM ")]
    assert len(froms) >= 2, "multi-stage: a dependency stage and a runtime stage"
    for line in froms:
        assert PINNED_PYTHON.match(line), f"base image not a pinned slim Python 3.11: {line}"

    cmd = [line for line in lines if line.startswith("CMD ")]
    assert len(cmd) == 1
    assert json.loads(cmd[0][4:]) == service_command(service), "exec-form CMD = devstack's"

    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users, "no USER: the image would run as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, f"USER {users[-1]} is not a fixed non-root UID"

    health = [line for line in lines if line.startswith("HEALTHCHECK ")]
    assert len(health) == 1 and service.health_path in health[0]
    assert str(service.container_port) in health[0] and "urllib" in health[0]
    assert "curl" not in health[0]

    env = " ".join(line for line in lines if line.startswith("ENV "))
    assert "PYTHONUNBUFFERED=1" in env and "PYTHONDONTWRITEBYTECODE=1" in env
    assert f"EXPOSE {service.container_port}" in lines


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
def test_dockerfile_installs_requirements_before_copying_code(service: ServiceSpec) -> None:
    lines = dockerfile(service)
    copies = [i for i, line in enumerate(lines) if line.startswith("COPY ")]
    requirements = next(i for i in copies if f"{service.directory}/requirements.txt" in lines[i])
    install = next(i for i, line in enumerate(lines) if "pip install" in line)
    package = service.app.split(":")[0]
    code = [i for i in copies if "fraud_common" in lines[i] or f"/{package}/" in lines[i]]
    assert len(code) == 2, "fraud_common and the package are copied into the image"
    assert requirements < install < min(code)
    for path in (REPO / "fraud_common", REPO / service.directory / package):
        assert path.is_dir()


def test_dockerignore_keeps_the_context_small_and_secret_free() -> None:
    ignored = (REPO / ".dockerignore").read_text().split()
    for entry in (".git", ".venv", ".env", "tests", "**/__pycache__", ".devstack"):
        assert entry in ignored


# -- docker-compose.yml, statically ------------------------------------------------


def test_images_are_pinned() -> None:
    services = compose()["services"]
    images = {name: svc.get("image", "") for name, svc in services.items()}
    assert re.fullmatch(r"apache/kafka:4\.\d+\.\d+", images["kafka"])
    assert re.fullmatch(r"kafbat/kafka-ui:v\d+\.\d+\.\d+", images["kafka-ui"])
    assert re.fullmatch(r"redis:\d+\.\d+\.\d+(-\w+)?", images["redis"])
    for name, image in images.items():
        if "build" not in services[name]:
            assert re.search(r":v?\d+\.\d+", image), f"{name}: image {image!r} is not pinned"


def test_infrastructure_ports_and_persistence() -> None:
    services = compose()["services"]
    # Nothing without authentication listens beyond the loopback interface.
    assert services["kafka-ui"]["ports"] == ["127.0.0.1:8081:8080"]
    assert services["redisinsight"]["ports"] == ["127.0.0.1:8001:5540"]
    assert services["kafka-ui"]["profiles"] == services["redisinsight"]["profiles"] == ["tools"]
    assert set(services["mailpit"]["ports"]) == {"127.0.0.1:8025:8025", "127.0.0.1:1025:1025"}
    assert services["kafka"]["ports"] == ["127.0.0.1:9092:9092"]  # PLAINTEXT
    redis_command = services["redis"]["command"]
    assert redis_command[redis_command.index("--appendonly") + 1] == "yes"
    assert "${REDIS_PASSWORD:?set it in .env}" in redis_command
    kafka_env = services["kafka"]["environment"]
    assert kafka_env["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, one node
    assert "kafka:19092" in kafka_env["KAFKA_ADVERTISED_LISTENERS"]
    assert "localhost:9092" in kafka_env["KAFKA_ADVERTISED_LISTENERS"]
    assert services["create-topics"]["restart"] == "no"


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
def test_service_is_built_health_checked_and_waits_for_healthy_dependencies(
    service: ServiceSpec,
) -> None:
    definition = compose()["services"][service.name]
    assert definition["build"] == {
        "context": ".",
        "dockerfile": f"{service.directory}/Dockerfile",
    }
    assert f"{service.host_port}:{service.container_port}" in definition["ports"]
    assert definition["environment"]["PORT"] == str(service.container_port)
    health = " ".join(definition["healthcheck"]["test"])
    assert f"127.0.0.1:{service.container_port}{service.health_path}" in health
    depends = definition["depends_on"]
    assert depends["kafka"]["condition"] == "service_healthy"
    assert depends["redis"]["condition"] == "service_healthy"
    assert depends["create-topics"]["condition"] == "service_completed_successfully"
    assert definition["restart"] in ("unless-stopped", "always", "on-failure")


@pytest.mark.parametrize("service", ["transaction-service", "alert-service"])
def test_api_keys_come_from_env(service: str) -> None:
    environment = compose()["services"][service]["environment"]
    assert environment["API_KEYS"] == "${API_KEYS:?set it in .env}"


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
def test_compose_runs_in_production_unless_env_says_development(service: ServiceSpec) -> None:
    assert compose()["services"][service.name]["environment"]["APP_ENV"] == (
        "${APP_ENV:-production}"
    )
    assert env_example()["APP_ENV"] == "development"


def test_consumer_groups_are_the_contracts() -> None:
    services = compose()["services"]
    assert services["fraud-detection-service"]["environment"]["CONSUMER_GROUP"] == (
        "fraud-detection-group"
    )
    assert services["alert-service"]["environment"]["CONSUMER_GROUP"] == "fraud-alert-group"


# -- settings: documented, forwarded, same defaults ---------------------------------


def fields(settings: type[BaseSettings]) -> set[str]:
    return set(settings.model_fields)


def test_env_example_documents_every_setting() -> None:
    text = (REPO / ".env.example").read_text()
    documented = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))
    wanted = set().union(*(fields(s) for s in SETTINGS.values()))
    missing = sorted(name.upper() for name in wanted if name.upper() not in documented)
    assert not missing, f".env.example does not document {missing}"
    for legacy in ("KAFKA_HOST", "REDIS_HOST", "REDIS_PORT", "WEB_CONCURRENCY"):
        assert legacy in documented


@pytest.mark.parametrize("name", list(SETTINGS))
def test_compose_forwards_every_setting_to_its_service(name: str) -> None:
    environment = compose()["services"][name]["environment"]
    expected = fields(SETTINGS[name]) - STRUCTURAL - set(NOT_FORWARDED)
    missing = sorted(f.upper() for f in expected if f.upper() not in environment)
    assert not missing, f"docker-compose.yml does not pass {missing} to {name}"


@pytest.mark.parametrize("name", list(SETTINGS))
def test_compose_defaults_equal_the_code_defaults(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = SETTINGS[name]
    for field in fields(settings) | {"kafka_host", "redis_host", "redis_port", "redis_password"}:
        monkeypatch.delenv(field.upper(), raising=False)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka:19092")
    monkeypatch.setenv("REDIS_URL", "redis://redis:6379/0")
    monkeypatch.setenv("WEBHOOK_SECRET", "x" * 32)
    code_defaults = settings()

    compared = 0
    for variable, value in compose()["services"][name]["environment"].items():
        match = re.fullmatch(r"\$\{(\w+):-(.*)\}", str(value))
        field = variable.lower()
        if match is None or field not in settings.model_fields or field in COMPOSE_OVERRIDES:
            continue
        assert match.group(1) == variable
        monkeypatch.setenv(variable, match.group(2))
        from_compose = settings()
        monkeypatch.delenv(variable)
        assert getattr(from_compose, field) == getattr(code_defaults, field), (
            f"{name}: docker-compose.yml's default for {variable} is {match.group(2)!r}, "
            f"the code's {getattr(code_defaults, field)!r}"
        )
        compared += 1
    assert compared >= 5
