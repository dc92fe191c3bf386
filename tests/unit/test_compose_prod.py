"""docker-compose.prod.yml and deploy/, checked without a Docker engine.

The file is validated by Debian's ``docker-compose config`` like the development one; the
rest is read statically (three brokers in one KRaft quorum, replication 3 and
min.insync.replicas 2, SASL wherever a client connects, no fixed name or host port on the
detector, limits everywhere), and the two scripts the containers run are executed here:
``create-topics.sh`` against recording stand-ins of Kafka's CLI tools, and
``deploy/redis/start.sh``, whose rendered ACL file is loaded into a real Redis-protocol
server (Valkey 8, as the image's Redis 7.4 knows WAITAOF) and probed with ``ACL DRYRUN``
for the keys each service's code names in `fraud_common.keys`.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from fraud_common import keys
from tests.support.redis_acl import (
    PASSWORDS,
    USERS,
    AclRedisServer,
    render_acl,
    start_acl_server,
)

REPO = Path(__file__).resolve().parents[2]
PROD = REPO / "docker-compose.prod.yml"
BROKERS = ["kafka-1", "kafka-2", "kafka-3"]
PYTHON_SERVICES = {
    "transaction-service": "transaction-service/transaction_service",
    "fraud-detection-service": "fraud-detection-service/fraud_detection",
    "alert-service": "alert-service/alert_service",
}
NEW_SECRETS = [
    "REDIS_ADMIN_PASSWORD",
    "REDIS_TRANSACTION_PASSWORD",
    "REDIS_DETECTOR_PASSWORD",
    "REDIS_ALERT_PASSWORD",
    "KAFKA_BROKER_PASSWORD",
    "KAFKA_ADMIN_PASSWORD",
    "KAFKA_APP_PASSWORD",
]
# Set differently in production on purpose, with the reason.
PROD_DIFFERS = {
    "KAFKA_BOOTSTRAP_SERVERS": "three brokers",
    "REDIS_URL": "one ACL user per service",
    "KAFKA_EXTRA_CONFIG": "SASL",
    "TOPIC_REPLICATION_FACTOR": "three brokers: default 3",
    "SMTP_HOST": "no Mailpit: a real SMTP server from .env",
    "SMTP_PORT": "no Mailpit: the code's default port",
    "EMAIL_TO": "no Mailpit: nobody unless .env names them",
}


def env_example() -> dict[str, str]:
    values = {}
    for line in (REPO / ".env.example").read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def load(path: Path) -> dict[str, Any]:
    return dict(yaml.safe_load(path.read_text()))


def prod() -> dict[str, Any]:
    return dict(load(PROD)["services"])


def default_of(value: object) -> str:
    """``${NAME:-default}`` -> default; anything else as it is."""
    match = re.fullmatch(r"\$\{\w+:-(.*)\}", str(value))
    return match.group(1) if match else str(value)


# -- validity ---------------------------------------------------------------------


def compose_config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip(
            "Debian's docker-compose is not installed (apt-get install docker-compose; "
            ".ci/run installs it): docker-compose.prod.yml was not validated"
        )
    names = set(re.findall(r"\$\{(\w+)", PROD.read_text()))
    clean = {k: v for k, v in os.environ.items() if k not in names}
    return subprocess.run(
        [binary, "-f", PROD.name, "config"],
        cwd=REPO,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_prod_file_is_valid_with_the_example_env() -> None:
    result = compose_config(env_example())
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    assert set(resolved["services"]) == {
        *BROKERS,
        "create-topics",
        "redis",
        "postgres",  # the archive of records and decisions
        "archive-service",
        *PYTHON_SERVICES,
    }, "no Kafka UI, RedisInsight or Mailpit in production"


@pytest.mark.parametrize("secret", ["REDIS_DURABILITY", "API_KEYS", *NEW_SECRETS])
def test_prod_file_refuses_to_run_without_a_secret(secret: str) -> None:
    result = compose_config({k: v for k, v in env_example().items() if k != secret})
    assert result.returncode != 0
    assert secret in result.stderr and "set it in .env" in result.stderr


def test_every_prod_variable_is_documented() -> None:
    text = (REPO / ".env.example").read_text()
    documented = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))
    used = set(re.findall(r"\$\{(\w+)", PROD.read_text()))
    assert used - documented == set()


# -- Kafka: three brokers, one quorum, RF 3, min ISR 2, SASL ---------------------


def test_three_kraft_brokers_share_one_controller_quorum() -> None:
    services = prod()
    envs = [services[name]["environment"] for name in BROKERS]
    assert sorted(int(env["KAFKA_NODE_ID"]) for env in envs) == [1, 2, 3]
    voters = {env["KAFKA_CONTROLLER_QUORUM_VOTERS"] for env in envs}
    assert voters == {"1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"}
    assert len({env["CLUSTER_ID"] for env in envs}) == 1
    for name, env in zip(BROKERS, envs, strict=True):
        assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
        node = env["KAFKA_NODE_ID"]
        assert f"{node}@{name}:9093" in env["KAFKA_CONTROLLER_QUORUM_VOTERS"]
        assert f"INTERNAL://{name}:19092" in env["KAFKA_ADVERTISED_LISTENERS"]
    advertised = [env["KAFKA_ADVERTISED_LISTENERS"] for env in envs]
    assert len(set(advertised)) == 3
    volumes = [services[name]["volumes"][0].split(":")[0] for name in BROKERS]
    assert len(set(volumes)) == 3, "each broker its own data volume"


def test_replication_three_and_min_isr_two_everywhere() -> None:
    services = prod()
    for name in BROKERS:
        env = services[name]["environment"]
        assert int(env["KAFKA_DEFAULT_REPLICATION_FACTOR"]) == 3
        assert int(env["KAFKA_MIN_INSYNC_REPLICAS"]) == 2
        assert int(env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"]) == 3
        assert int(env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"]) == 3
        assert int(env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"]) == 2
        assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    topics = services["create-topics"]["environment"]
    assert default_of(topics["TOPIC_REPLICATION_FACTOR"]) == "3"
    assert default_of(topics["TOPIC_MIN_INSYNC_REPLICAS"]) == "2"
    for name in PYTHON_SERVICES:  # the services' own topic creation at start, too
        assert default_of(services[name]["environment"]["TOPIC_REPLICATION_FACTOR"]) == "3"


def listener_protocols(env: dict[str, str]) -> dict[str, str]:
    pairs = (item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    return dict(pairs)


def test_every_kafka_listener_a_client_reaches_is_sasl() -> None:
    services = prod()
    for name in BROKERS:
        broker = services[name]
        env = broker["environment"]
        protocols = listener_protocols(env)
        controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
        for listener in env["KAFKA_ADVERTISED_LISTENERS"].split(","):
            listener_name = listener.split("://")[0]
            assert protocols[listener_name].startswith("SASL_"), f"{name}: {listener}"
        assert env["KAFKA_SASL_ENABLED_MECHANISMS"] == "PLAIN"
        ports = {
            listener.split("://")[0]: listener.rsplit(":", 1)[1]
            for listener in env["KAFKA_LISTENERS"].split(",")
        }
        for published in broker["ports"]:
            host, _, container = published.rpartition(":")
            assert host.startswith("127.0.0.1:"), f"{name}: {published} on every interface"
            exposed = [listener for listener, port in ports.items() if port == container]
            assert exposed and protocols[exposed[0]].startswith("SASL_"), published
            assert exposed[0] != controller, "the controller quorum is never published"
        for listener in ("INTERNAL", "EXTERNAL"):
            jaas = env[f"KAFKA_LISTENER_NAME_{listener}_PLAIN_SASL_JAAS_CONFIG"]
            for user in ("broker", "admin", "fraud-app"):
                assert f'user_{user}="${{KAFKA_' in jaas, f"{listener}: no account {user}"
            assert "PlainLoginModule required" in jaas and jaas.rstrip().endswith(";")


def test_services_and_tools_log_in_with_sasl() -> None:
    services = prod()
    for name in PYTHON_SERVICES:
        raw = services[name]["environment"]["KAFKA_EXTRA_CONFIG"]
        extra = json.loads(raw.replace("${KAFKA_APP_PASSWORD:?set it in .env}", "secret"))
        assert extra["security.protocol"].startswith("SASL_")
        assert (extra["sasl.mechanisms"], extra["sasl.username"]) == ("PLAIN", "fraud-app")
        assert extra["sasl.password"] == "secret"
    topics = services["create-topics"]
    assert topics["environment"]["KAFKA_COMMAND_CONFIG"] in topics["entrypoint"][-1]
    assert "sasl-client.sh" in topics["entrypoint"][-1]
    for name in BROKERS:
        assert "--command-config" in " ".join(services[name]["healthcheck"]["test"])


def test_sasl_client_properties_are_written_from_the_environment(tmp_path: Path) -> None:
    out = tmp_path / "client.properties"
    env = {**os.environ, "SASL_USERNAME": "admin", "SASL_PASSWORD": "p4ss"}
    script = REPO / "deploy/kafka/sasl-client.sh"
    subprocess.run(["bash", str(script), str(out)], env=env, check=True, timeout=10)
    text = out.read_text()
    assert "security.protocol=SASL_PLAINTEXT" in text and "sasl.mechanism=PLAIN" in text
    assert 'username="admin" password="p4ss";' in text
    assert out.stat().st_mode & 0o077 == 0, "readable by its owner only"
    missing = {k: v for k, v in env.items() if k != "SASL_PASSWORD"}
    result = subprocess.run(["bash", str(script), str(out)], env=missing, capture_output=True)
    assert result.returncode != 0


# -- create-topics.sh with Kafka's tools ----------------------------------------

RECORDER = """#!/usr/bin/env bash
printf '%s\\n' "$(basename "$0") $*" >> "$CALLS"
"""


def run_create_topics(tmp_path: Path, env: dict[str, str]) -> list[str]:
    """create-topics.sh copied away from the repository (no project Python beside it, so it
    takes the kafka-topics.sh path) with recording kafka-topics.sh / kafka-configs.sh."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("kafka-topics.sh", "kafka-configs.sh"):
        (bin_dir / tool).write_text(RECORDER)
        (bin_dir / tool).chmod(0o755)
    script = tmp_path / "create-topics.sh"
    shutil.copy(REPO / "create-topics.sh", script)
    calls = tmp_path / "calls"
    base = {"PATH": f"{bin_dir}:/usr/bin:/bin", "CALLS": str(calls), "PYTHON": "/bin/false"}
    subprocess.run(["bash", str(script)], env={**base, **env}, check=True, timeout=30)
    return calls.read_text().splitlines()


def test_create_topics_uses_the_prod_replication_and_min_isr(tmp_path: Path) -> None:
    topics = prod()["create-topics"]["environment"]
    env = {name: default_of(value) for name, value in topics.items()}
    calls = run_create_topics(tmp_path, env)
    creates = [call for call in calls if "--create" in call]
    assert len(creates) == 5  # the contract's four and the decisions topic
    for call in creates:
        assert "--replication-factor 3" in call and "--config min.insync.replicas=2" in call
        assert "--command-config /tmp/admin.properties" in call
        assert "--bootstrap-server kafka-1:19092,kafka-2:19092,kafka-3:19092" in call
    altered = [call for call in calls if call.startswith("kafka-configs.sh")]
    assert len(altered) == 5 and all("--add-config min.insync.replicas=2" in c for c in altered)
    assert all(f"--topic {topic} --partitions {n}" in " ".join(creates) for topic, n in (
        ("transactions", 10), ("fraud-alerts", 5), ("transactions.dlq", 1),
        ("decisions", 10)))  # fmt: skip


def test_create_topics_defaults_are_unchanged(tmp_path: Path) -> None:
    calls = run_create_topics(tmp_path, {})
    creates = [call for call in calls if "--create" in call]
    assert len(creates) == 5
    for call in creates:
        assert "--replication-factor 1" in call and "min.insync.replicas" not in call
        assert "--command-config" not in call
    assert not [call for call in calls if call.startswith("kafka-configs.sh")]


# -- Redis: persistence, memory, users ------------------------------------------


def test_redis_is_bounded_without_eviction_and_persistent() -> None:
    redis_service = prod()["redis"]
    command = [str(part) for part in redis_service["command"]]

    def option(name: str) -> str:
        return command[command.index(name) + 1]

    assert option("--appendonly") == "yes"
    assert option("--appendfsync") == "always"
    assert option("--maxmemory-policy") == "noeviction"
    assert re.fullmatch(r"\d+[kmg]b", default_of(option("--maxmemory")))
    assert "--requirepass" not in command, "users come from the ACL file"
    assert redis_service["entrypoint"] == ["/deploy/redis/start.sh"]
    assert "ports" not in redis_service, "Redis is reachable from the compose network only"
    assert "--user admin" in " ".join(redis_service["healthcheck"]["test"])


def test_services_connect_as_their_own_redis_user() -> None:
    services = prod()
    users = set()
    for name in PYTHON_SERVICES:
        url = services[name]["environment"]["REDIS_URL"]
        match = re.fullmatch(
            r"redis://([\w-]+):\$\{(REDIS_\w+_PASSWORD):\?[^}]*\}@redis:6379/0", url
        )
        assert match, f"{name}: {url}"
        assert match.group(1) == name
        users.add(match.group(2))
    assert len(users) == 3


# -- scaling, limits, exposure ------------------------------------------------------


def test_detector_scales_without_fixed_names_or_host_ports() -> None:
    detector = prod()["fraud-detection-service"]
    assert "container_name" not in detector
    assert "ports" not in detector
    assert all("container_name" not in svc for svc in prod().values())
    transaction = prod()["transaction-service"]
    (published,) = transaction["ports"]
    assert re.fullmatch(r"127\.0\.0\.1:\d+-\d+:3000", published), "a range: one per replica"


def test_every_service_has_resource_limits() -> None:
    for name, service in prod().items():
        limits = service.get("deploy", {}).get("resources", {}).get("limits", {})
        assert float(limits["cpus"]) > 0, name
        assert re.fullmatch(r"\d+[MG]", default_of(limits["memory"])), name


def test_nothing_is_published_beyond_this_host() -> None:
    for name, service in prod().items():
        for published in service.get("ports", []):
            assert str(published).startswith("127.0.0.1:"), f"{name}: {published}"


@pytest.mark.parametrize("name", list(PYTHON_SERVICES))
def test_prod_services_get_the_development_environment(name: str) -> None:
    """Same settings, same defaults as docker-compose.yml (which test_compose.py checks
    against the code), except where production differs on purpose."""
    development = load(REPO / "docker-compose.yml")["services"][name]
    production = prod()[name]
    for variable, value in development["environment"].items():
        if variable in PROD_DIFFERS:
            continue
        assert production["environment"].get(variable) == value, variable
    assert production["healthcheck"] == development["healthcheck"]
    assert production["build"] == development["build"]
    assert production["stop_grace_period"] == development["stop_grace_period"]


# -- the Redis ACL users, on a real server --------------------------------------

NOT_KEYS = {"notify_group", "pending_shard", "PREFIX", "PENDING_SHARDS"}
READ_ONLY = {("alert-service", "stats_transactions")}


@pytest.fixture(scope="module")
def acl_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AclRedisServer]:
    server = start_acl_server(tmp_path_factory.mktemp("acl"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def admin(acl_server: AclRedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis(
        port=acl_server.port,
        username="admin",
        password=PASSWORDS["REDIS_ADMIN_PASSWORD"],
        decode_responses=True,
    )
    yield client
    client.close()


def dryrun(admin: redis.Redis, user: str, *command: str) -> bool:
    try:
        return bool(admin.execute_command("ACL", "DRYRUN", user, *command) == "OK")
    except redis.ResponseError as error:  # e.g. an unknown command
        pytest.fail(f"ACL DRYRUN {user} {' '.join(command)}: {error}")


def key_names() -> dict[str, Callable[..., str] | str]:
    found: dict[str, Callable[..., str] | str] = {}
    for name, value in vars(keys).items():
        if name.startswith("_") or name in NOT_KEYS:
            continue
        if isinstance(value, str) or (
            inspect.isfunction(value) and value.__module__ == keys.__name__
        ):
            found[name] = value
    return found


def sample_key(value: Callable[..., str] | str) -> str:
    if isinstance(value, str):
        return value
    arguments: list[Any] = []
    for parameter in inspect.signature(value).parameters.values():
        if parameter.name == "stream":
            arguments.append(keys.ALERTS_STREAM)
        else:
            arguments.append(3 if parameter.annotation in (int, "int") else f"x-{parameter.name}")
    return value(*arguments)


def family(key: str) -> str:
    return re.sub(r"\d+", "N", key)


def used_keys(service: str) -> set[str]:
    """The `fraud_common.keys` names a service's package mentions, plus the durability
    fence every service writes (REDIS_DURABILITY=waitaof)."""
    text = " ".join(p.read_text() for p in (REPO / PYTHON_SERVICES[service]).rglob("*.py"))
    return (set(re.findall(r"\bkeys\.(\w+)", text)) & set(key_names())) | {"DURABILITY_FENCE"}


def test_start_script_refuses_a_missing_or_unsafe_password(tmp_path: Path) -> None:
    missing = {k: v for k, v in PASSWORDS.items() if k != "REDIS_ALERT_PASSWORD"}
    result = render_acl(tmp_path, missing)
    assert result.returncode != 0 and "REDIS_ALERT_PASSWORD" in result.stderr
    result = render_acl(tmp_path, {**PASSWORDS, "REDIS_ADMIN_PASSWORD": "a b@c"})
    assert result.returncode != 0 and "REDIS_ADMIN_PASSWORD" in result.stderr
    assert not (tmp_path / "args").exists(), "Redis was started anyway"


def test_rendered_acl_file_holds_no_placeholder_and_is_private(tmp_path: Path) -> None:
    assert render_acl(tmp_path, PASSWORDS).returncode == 0
    rendered = tmp_path / "acl" / "users.acl"
    text = rendered.read_text()
    assert "${" not in text and "#" not in text
    assert all(f">{password} " in text for password in PASSWORDS.values())
    assert rendered.stat().st_mode & 0o077 == 0
    template = (REPO / "deploy/redis/users.acl.template").read_text()
    assert not any(password in template for password in PASSWORDS.values())


def test_default_user_is_off(acl_server: AclRedisServer) -> None:
    anonymous = redis.Redis(port=acl_server.port)
    with pytest.raises(redis.AuthenticationError):
        anonymous.ping()
    anonymous.close()


@pytest.mark.parametrize("service", list(USERS))
def test_service_user_logs_in_and_uses_waitaof(acl_server: AclRedisServer, service: str) -> None:
    password = PASSWORDS[USERS[service]]
    client = redis.Redis.from_url(f"redis://{service}:{password}@127.0.0.1:{acl_server.port}/0")
    assert client.ping()
    client.set(keys.DURABILITY_FENCE, "1")
    assert client.execute_command("WAITAOF", 1, 0, 1000) == [1, 0]
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=acl_server.port, username=service, password="wrong").ping()
    client.close()


@pytest.mark.parametrize("service", list(USERS))
def test_service_user_reaches_exactly_the_keys_its_code_names(
    admin: redis.Redis, service: str
) -> None:
    used = used_keys(service)
    assert len(used) >= 4, f"found too few key names in {service}: {used}"
    # keys.pending(id) is one of the keys.pending_index(n): one family, digits aside.
    families = {family(sample_key(key_names()[name])) for name in used}
    for name, value in key_names().items():
        key = sample_key(value)
        allowed = dryrun(admin, service, "GET", key)
        writable = dryrun(admin, service, "SET", key, "v")
        if family(key) in families:
            assert allowed, f"{service} cannot read {key} ({name})"
            assert writable == ((service, name) not in READ_ONLY), f"{service}: SET {key}"
        else:
            assert not allowed, f"{service} may read {key} ({name}), which its code never names"


def script_commands(service: str) -> set[str]:
    """Every command a service's Lua scripts call (inline in Python or in .lua files)."""
    directory = REPO / PYTHON_SERVICES[service]
    sources = [*directory.rglob("*.py"), *directory.rglob("*.lua")]
    text = " ".join(p.read_text() for p in sources)
    return {c.upper() for c in re.findall(r"redis\.p?call\(\s*['\"](\w+)['\"]", text)}


# Arguments that make each command well-formed for ACL DRYRUN, ``K`` standing for a key.
SAMPLE_ARGUMENTS = {
    "GET": ["K"], "SET": ["K", "v"], "DEL": ["K"], "EXISTS": ["K"], "TYPE": ["K"],
    "EXPIRE": ["K", "1"], "PEXPIRE": ["K", "1"], "PTTL": ["K"], "INCRBY": ["K", "1"],
    "HGET": ["K", "f"], "HSET": ["K", "f", "v"], "HDEL": ["K", "f"], "HMGET": ["K", "f"],
    "HINCRBY": ["K", "f", "1"], "HGETALL": ["K"],
    "ZADD": ["K", "1", "m"], "ZREM": ["K", "m"], "ZCARD": ["K"], "ZCOUNT": ["K", "0", "1"],
    "ZSCORE": ["K", "m"], "ZRANGE": ["K", "0", "1"], "ZREVRANGE": ["K", "0", "1"],
    "ZREVRANGEBYSCORE": ["K", "1", "0"],
    "ZRANGEBYSCORE": ["K", "0", "1"], "ZREMRANGEBYRANK": ["K", "0", "1"],
    "ZREMRANGEBYSCORE": ["K", "0", "1"], "XADD": ["K", "*", "f", "v"],
    "XAUTOCLAIM": ["K", "g", "c", "0", "0"], "XCLAIM": ["K", "g", "c", "0", "0-1"],
    "RPUSH": ["K", "v"], "LPUSH": ["K", "v"],
}  # fmt: skip
# Commands the services send from Python (redis-py calls, read in the code), beyond
# their scripts; ``K`` is replaced by a key the service names.
CLIENT_COMMANDS = {
    "transaction-service": [["MGET", "K"], ["BLMOVE", "K", "K", "LEFT", "LEFT", "1"],
                            ["EVALSHA", "0" * 40, "1", "K"], ["SCRIPT", "LOAD", "return 1"]],
    "fraud-detection-service": [["EVALSHA", "0" * 40, "1", "K"], ["ZMSCORE", "K", "m"],
                                ["HGETALL", "K"], ["HINCRBY", "K", "f", "1"], ["RPUSH", "K", "v"]],
    "alert-service": [["XREAD", "STREAMS", "K", "0"], ["XREADGROUP", "GROUP", "g", "c",
                      "STREAMS", "K", ">"], ["XACK", "K", "g", "0-1"], ["XPENDING", "K", "g"],
                      ["XGROUP", "CREATE", "K", "g", "$", "MKSTREAM"],
                      ["XGROUP", "DELCONSUMER", "K", "g", "c"], ["XRANGE", "K", "-", "+"],
                      ["XREVRANGE", "K", "+", "-"], ["MGET", "K"]],
}  # fmt: skip
COMMON = [["PING"], ["HELLO", "3"], ["CLIENT", "SETNAME", "n"], ["SELECT", "0"],
          ["MULTI"], ["EXEC"], ["WAITAOF", "1", "0", "0"]]  # fmt: skip
FORBIDDEN = [["FLUSHALL"], ["FLUSHDB"], ["KEYS", "*"], ["CONFIG", "SET", "maxmemory", "0"],
             ["ACL", "LIST"], ["SHUTDOWN"], ["DEBUG", "SLEEP", "0"], ["PUBLISH", "c", "m"],
             ["SUBSCRIBE", "c"], ["CLIENT", "KILL", "ID", "1"], ["MONITOR"], ["SCAN", "0"],
             ["SCRIPT", "FLUSH"], ["FUNCTION", "FLUSH"], ["BGREWRITEAOF"]]  # fmt: skip


@pytest.mark.parametrize("service", list(USERS))
def test_service_user_may_run_what_its_code_and_scripts_send(
    admin: redis.Redis, service: str
) -> None:
    key = sample_key(key_names()[sorted(used_keys(service) - {"DURABILITY_FENCE"})[0]])
    from_scripts = script_commands(service)
    assert from_scripts, f"no Lua script found in {service}"
    unknown = from_scripts - set(SAMPLE_ARGUMENTS)
    assert not unknown, f"add sample arguments for {unknown}"
    commands = [[c, *SAMPLE_ARGUMENTS[c]] for c in sorted(from_scripts)]
    for command in [*commands, *CLIENT_COMMANDS[service], *COMMON]:
        resolved = [key if part == "K" else part for part in command]
        assert dryrun(admin, service, *resolved), f"{service} may not {' '.join(resolved)}"


@pytest.mark.parametrize("service", list(USERS))
def test_service_user_may_not_run_admin_commands(admin: redis.Redis, service: str) -> None:
    for command in FORBIDDEN:
        assert not dryrun(admin, service, *command), f"{service} may {' '.join(command)}"
