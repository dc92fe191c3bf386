"""The served OpenAPI document is complete and true: real responses of every endpoint
validate against it, and schemathesis fuzzing the running service from it finds no 5xx,
no non-JSON error and no response outside the document."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from fraud_common import keys
from fraud_common.jsonutil import loads_exact
from fraud_common.schemas import Decision
from tests.support.transaction_server import assert_conforms, new_topics, transaction_server
from tools.devstack import ServiceProcess
from transaction_service import create_app
from transaction_service.idempotency import fingerprint, scoped_key
from transaction_service.openapi import build_document
from transaction_service.settings import TransactionServiceSettings

pytestmark = pytest.mark.integration

TRANSACTIONS = "/api/v1/transactions"
ONE = "/api/v1/transactions/{transactionId}"
BATCH = "/api/v1/transactions/batch"
HEALTH = "/api/v1/health"
OPENAPI = "/api/v1/openapi.json"


@pytest.fixture(scope="module")
def service_env(kafka_bootstrap: str, redis_server_url: str) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "REDIS_URL": redis_server_url,
        **new_topics(kafka_bootstrap),
    }


@pytest.fixture(scope="module")
def server(service_env: dict[str, str]) -> Iterator[ServiceProcess]:
    with transaction_server(service_env, workers=2) as running:
        yield running


@pytest.fixture(scope="module")
def document(server: ServiceProcess) -> dict[str, Any]:
    response = requests.get(f"{server.url}{OPENAPI}", timeout=10)
    assert response.status_code == 200
    served: dict[str, Any] = response.json()
    return served


def a_transaction(**fields: Any) -> dict[str, Any]:
    return {
        "userId": f"user-{uuid.uuid4().hex[:12]}",
        "amount": "99.95",
        "currency": "GBP",
        "location": "London",
        **fields,
    }


def test_document_covers_every_route(service_env: dict[str, str], document: dict[str, Any]) -> None:
    settings = {k.lower(): v for k, v in service_env.items()}
    app = create_app(TransactionServiceSettings.model_validate(settings))
    try:
        routes = {
            (rule.rule.replace("<transaction_id>", "{transactionId}"), method.lower())
            for rule in app.url_map.iter_rules()
            for method in rule.methods or ()
            if method not in ("HEAD", "OPTIONS")
        }
    finally:
        for close in app.extensions["fraud_common.closers"]:
            close()
    documented = {
        (path, method) for path, operations in document["paths"].items() for method in operations
    }
    assert routes == documented
    assert document["openapi"] == "3.1.0"
    assert document == DOCUMENT
    assert document["components"]["securitySchemes"]["apiKey"]["name"] == "X-API-Key"


def test_real_responses_conform(
    server: ServiceProcess, document: dict[str, Any], redis_client: redis.Redis
) -> None:
    url = server.url

    def check(path: str, method: str, response: requests.Response, status: int) -> None:
        assert response.status_code == status, response.text
        assert_conforms(document, path, method, response)

    an_hour_ago = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    body = a_transaction(latitude=51.5, longitude=-0.12, timestamp=an_hour_ago)
    created = requests.post(f"{url}{TRANSACTIONS}", json=body, timeout=10)
    check(TRANSACTIONS, "post", created, 201)
    transaction_id = created.json()["transactionId"]

    key = str(uuid.uuid4())
    first = requests.post(f"{url}{TRANSACTIONS}", json=body, headers={"Idempotency-Key": key})
    check(TRANSACTIONS, "post", first, 201)
    replay = requests.post(f"{url}{TRANSACTIONS}", json=body, headers={"Idempotency-Key": key})
    check(TRANSACTIONS, "post", replay, 201)
    assert replay.headers["Idempotent-Replayed"] == "true"
    other = requests.post(
        f"{url}{TRANSACTIONS}", json=a_transaction(), headers={"Idempotency-Key": key}, timeout=10
    )
    check(TRANSACTIONS, "post", other, 422)

    busy_key = str(uuid.uuid4())
    as_parsed = loads_exact(json.dumps(body))
    marker = {
        "state": "in_flight",
        "fingerprint": fingerprint(TRANSACTIONS, as_parsed),
        "owner": "x",
    }
    redis_client.set(keys.idempotency(scoped_key(busy_key)), json.dumps(marker), ex=30)
    in_flight = requests.post(
        f"{url}{TRANSACTIONS}", json=body, headers={"Idempotency-Key": busy_key}, timeout=10
    )
    check(TRANSACTIONS, "post", in_flight, 409)
    assert in_flight.headers["Retry-After"]

    invalid = requests.post(f"{url}{TRANSACTIONS}", json={"amount": "abc"}, timeout=10)
    check(TRANSACTIONS, "post", invalid, 400)
    not_json = requests.post(
        f"{url}{TRANSACTIONS}", data=b"{", headers={"Content-Type": "application/json"}
    )
    check(TRANSACTIONS, "post", not_json, 400)
    too_large = requests.post(
        f"{url}{TRANSACTIONS}", data=b" " * 70000, headers={"Content-Type": "application/json"}
    )
    check(TRANSACTIONS, "post", too_large, 413)
    form = requests.post(f"{url}{TRANSACTIONS}", data={"a": "b"}, timeout=10)
    check(TRANSACTIONS, "post", form, 415)

    batch = requests.post(
        f"{url}{BATCH}", json={"transactions": [a_transaction(), a_transaction()]}, timeout=10
    )
    check(BATCH, "post", batch, 201)
    bad_batch = requests.post(f"{url}{BATCH}", json={"transactions": [{}]}, timeout=10)
    check(BATCH, "post", bad_batch, 400)

    pending = requests.get(f"{url}{TRANSACTIONS}/{transaction_id}", timeout=10)
    check(ONE, "get", pending, 200)
    decision = Decision(
        transactionId=transaction_id,
        status="approve",
        riskScore=0,
        evaluatedAt=datetime.now(UTC),
    )
    redis_client.set(keys.decision(transaction_id), decision.to_json())
    decided = requests.get(f"{url}{TRANSACTIONS}/{transaction_id}", timeout=10)
    check(ONE, "get", decided, 200)
    assert decided.json()["status"] == "approve"
    missing = requests.get(f"{url}{TRANSACTIONS}/{uuid.uuid4()}", timeout=10)
    check(ONE, "get", missing, 404)

    check(HEALTH, "get", requests.get(f"{url}{HEALTH}", timeout=10), 200)
    check(OPENAPI, "get", requests.get(f"{url}{OPENAPI}", timeout=10), 200)


# --- fuzzing ------------------------------------------------------------------------


# The document fuzzed is built from the same code and settings as the served one (the
# first test asserts that they are equal); schemathesis's lazy fixture loader does not
# work with this pytest, so the schema is loaded at import time.
DOCUMENT = build_document(
    TransactionServiceSettings.model_validate(
        {"kafka_bootstrap_servers": "unused:9092", "redis_url": "redis://unused:6379/0"}
    )
)
schema = schemathesis.openapi.from_dict(DOCUMENT)


@schema.parametrize()
@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_fuzzing_finds_no_5xx_and_nothing_outside_the_document(
    case: Any, server: ServiceProcess
) -> None:
    case.call_and_validate(
        base_url=server.url,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_headers_conformance,
            response_schema_conformance,
        ],
    )
