"""The three services run on the production Redis ACL users and nothing is refused.

docker-compose.prod.yml gives each service its own Redis user limited to its keys and
commands (deploy/redis/users.acl.template). A missing command or key pattern would show
only in production, as a NOPERM on some path; here the three services run under
gunicorn, each as its user, against a Valkey 8 loaded with the rendered ACL file and
with ``REDIS_DURABILITY=waitaof``, through every path that touches Redis: ingest (single,
batch, idempotent, inline decision), detection, the reconciler, lists and rules,
stored alerts, stats, the live stream, and webhook retries up to the DLQ. Then the
services stop (their shutdown paths write too), and Redis's ACL log and the services'
logs must show no refusal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from fraud_common import keys
from tests.conftest import TopicNames
from tests.support.redis_acl import PASSWORDS, USERS, AclRedisServer, start_acl_server
from tools.devstack import ServiceProcess
from tools.local_services import wait_for

USER = "acl-user-1"


def call(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
    """(status, JSON body or text) of one request."""
    response = requests.request(method, url, json=body, headers=headers, timeout=10)
    try:
        return response.status_code, response.json()
    except ValueError:
        return response.status_code, response.text


@pytest.fixture(scope="module")
def acl_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AclRedisServer]:
    server = start_acl_server(tmp_path_factory.mktemp("acl"), appendfsync="always")
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


def start_services(
    acl_server: AclRedisServer,
    kafka_bootstrap: str,
    topics: TopicNames,
    group: Callable[[str], str],
    log_dir: Path,
) -> dict[str, ServiceProcess]:
    common = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "REDIS_DURABILITY": "waitaof",
        "API_KEYS": "",
        "ADMIN_API_KEYS": "",
        **topics.as_env(),
    }
    own = {
        "transaction-service": {},
        "fraud-detection-service": {
            "CONSUMER_GROUP": group("fraud-detection-group"),
            "RECONCILE_INTERVAL_SECONDS": "0.5",
            "RECONCILE_AFTER_SECONDS": "1",
        },
        "alert-service": {
            "CONSUMER_GROUP": group("fraud-alert-group"),
            # Nothing listens on port 9: every delivery fails, is retried, then parked.
            "WEBHOOK_URLS": "http://127.0.0.1:9/hook",
            "WEBHOOK_SECRET": "w" * 40,
            "WEBHOOK_MAX_ATTEMPTS": "2",
            "WEBHOOK_BACKOFF_INITIAL_SECONDS": "0.1",
            "WEBHOOK_BACKOFF_MAX_SECONDS": "0.2",
            "ALERT_COOLDOWN_SECONDS": "0",
        },
    }
    services = {}
    for name, password_variable in USERS.items():
        metrics = log_dir / f"metrics-{name}"
        metrics.mkdir()
        url = f"redis://{name}:{PASSWORDS[password_variable]}@127.0.0.1:{acl_server.port}/0"
        settings = {
            **common,
            **own[name],
            "REDIS_URL": url,
            "PROMETHEUS_MULTIPROC_DIR": str(metrics),
        }
        services[name] = ServiceProcess.on_free_port(name, settings, log_dir=log_dir).start()
    return services


def test_every_path_of_the_three_services_runs_on_its_acl_user(
    acl_server: AclRedisServer,
    admin: redis.Redis,
    kafka_bootstrap: str,
    topics: TopicNames,
    unique_group: Callable[[str], str],
    tmp_path: Path,
) -> None:
    admin.execute_command("ACL", "LOG", "RESET")
    services = start_services(acl_server, kafka_bootstrap, topics, unique_group, tmp_path)
    try:
        for service in services.values():
            service.wait_healthy(90)
        txn = services["transaction-service"].url + "/api/v1/transactions"
        detector = services["fraud-detection-service"].url
        alerts = services["alert-service"].url

        def transaction(amount: str) -> dict[str, str]:
            return {"userId": USER, "amount": amount, "currency": "USD", "location": "Paris"}

        # Ingest: idempotent single POSTs (the second is a replay), an inline decision,
        # a batch; a burst from one user makes the detector alert.
        first = call("POST", txn, transaction("10.00"), {"Idempotency-Key": "acl-key-1"})
        again = call("POST", txn, transaction("10.00"), {"Idempotency-Key": "acl-key-1"})
        assert first[0] == 201 and again[0] in (200, 201), (first, again)
        assert again[1]["transactionId"] == first[1]["transactionId"]
        inline = call("POST", txn, transaction("11.00"), {"Prefer": "wait=5"})
        assert inline[0] == 201, inline
        burst = {"transactions": [transaction(f"{12 + i}.00") for i in range(8)]}
        batch = call("POST", txn + "/batch", burst, {"Prefer": "wait=5"})
        assert batch[0] == 201 and batch[1]["count"] == 8, batch
        status = call("GET", f"{txn}/{first[1]['transactionId']}")
        assert status[0] == 200, status

        wait_for(
            lambda: bool(call("GET", f"{alerts}/api/v1/alerts?userId={USER}")[1]["alerts"]),
            timeout=60,
            what="an alert for the burst",
        )
        assert call("GET", f"{alerts}/api/v1/alerts?limit=5")[0] == 200
        assert call("GET", f"{alerts}/api/v1/stats")[0] == 200
        with requests.get(f"{alerts}/api/v1/alerts/stream", stream=True, timeout=10) as stream:
            assert stream.status_code == 200
            assert next(stream.iter_lines())  # the first line of the event stream

        # Detector: lists and rules.
        assert (
            call("PUT", f"{detector}/api/v1/lists/blocked-users/entries/u-x", {"reason": "t"})[0]
            == 201
        )
        assert call("GET", f"{detector}/api/v1/lists/blocked-users")[0] == 200
        assert call("DELETE", f"{detector}/api/v1/lists/blocked-users/entries/u-x")[0] == 204
        assert call("POST", f"{detector}/api/v1/rules/reload")[0] == 200
        assert call("GET", f"{detector}/api/v1/rules")[0] == 200

        # The webhook's retries end on the DLQ: the retry schedule is written and emptied.
        def parked() -> bool:
            retries = admin.keys("{fraud:alerts:stream}:notify:*:attempts")
            log = (tmp_path / "alert-service.log").read_text()
            return "parked on the DLQ" in log and all(not admin.hlen(k) for k in retries)

        wait_for(parked, timeout=60, what="webhook deliveries parked on the DLQ")

        # The reconciler (every 0.5 s, under its shard locks) removes the decided ones.
        def swept() -> bool:
            return all(not admin.zcard(keys.pending_index(n)) for n in range(keys.PENDING_SHARDS))

        wait_for(swept, timeout=60, what="the reconciler to empty the pending index")
    finally:
        for service in services.values():
            service.stop()

    refusals = admin.execute_command("ACL", "LOG")
    assert refusals == [], refusals
    for name in services:
        log = (tmp_path / f"{name}.log").read_text()
        assert "NOPERM" not in log and "no permissions" not in log, name
