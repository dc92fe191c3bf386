"""The alert-service's OpenAPI 3.1 document is valid, complete and true: every route is
documented, real responses of every operation (over real HTTP, fed through the real
broker and Redis) validate against it, and schemathesis fuzzing the JSON endpoints finds
no 5xx and nothing outside the document."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import jsonschema_rs
import pytest
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
from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR

from alert_service import create_app
from alert_service.openapi import document
from fraud_common.kafka.topics import contract_topics, ensure_topics
from fraud_common.schemas import Alert
from tests.conftest import TopicNames
from tests.support.alert_app import (
    AlertPublisher,
    alert_settings,
    closing,
    running,
    served,
)
from tests.support.factories import make_alert
from tools.local_services import free_port, wait_for

pytestmark = pytest.mark.integration

DOC = document()


def assert_documented(path: str, method: str, response: requests.Response) -> None:
    """Fail unless ``response`` is documented for ``method path``: status, content type,
    header values and (for JSON) the body schema, formats included."""
    operation = DOC["paths"][path][method.lower()]
    spec = operation["responses"].get(str(response.status_code))
    assert spec is not None, f"{method} {path}: status {response.status_code} not documented"
    media_type = response.headers["Content-Type"].split(";")[0].strip()
    assert media_type in spec["content"], f"{method} {path}: {media_type} not documented"
    for name, header in spec.get("headers", {}).items():
        value: Any = response.headers.get(name)
        assert value is not None, f"{method} {path} {response.status_code}: no {name} header"
        if header["schema"].get("type") == "integer":
            value = int(value)
        assert jsonschema_rs.is_valid(header["schema"], value), f"{name}: {value!r}"
    if media_type != "application/json":
        return
    schema = {"components": DOC["components"], **spec["content"][media_type]["schema"]}
    validator = jsonschema_rs.Draft202012Validator(schema, validate_formats=True)
    errors = [str(e) for e in validator.iter_errors(response.json())]
    assert not errors, f"{method} {path} {response.status_code}: {errors}\n{response.text}"


def test_the_document_is_valid_openapi_3_1() -> None:
    errors = [str(e) for e in OPENAPI_31_VALIDATOR.iter_errors(DOC)]
    assert not errors, errors
    assert DOC["openapi"].startswith("3.1")


def test_every_route_is_documented_and_every_documented_path_routed(
    kafka_bootstrap: str, redis_url: str, topics: TopicNames
) -> None:
    with closing(create_app(alert_settings(kafka_bootstrap, redis_url, topics))) as app:
        routed = set()
        for rule in app.url_map.iter_rules():
            if rule.endpoint == "static":  # Flask's own /static, no files behind it
                continue
            path = rule.rule.replace("<path:", "{").replace("<", "{").replace(">", "}")
            for method in rule.methods or ():
                if method not in ("HEAD", "OPTIONS"):
                    routed.add((path, method.lower()))
    documented = {(path, method) for path, item in DOC["paths"].items() for method in item}
    assert routed == documented


@pytest.fixture(scope="module")
def server(kafka_bootstrap: str, redis_server_url: str) -> Iterator[tuple[str, Alert]]:
    """The service over real HTTP with its consumer running, holding one alert."""
    suffix = uuid.uuid4().hex[:10]
    topics = TopicNames(f"transactions-{suffix}", f"fraud-alerts-{suffix}")
    ensure_topics(kafka_bootstrap, contract_topics(topics.transactions, topics.alerts))
    app = create_app(alert_settings(kafka_bootstrap, redis_server_url, topics))
    publisher = AlertPublisher(kafka_bootstrap, topics.alerts)
    alert = make_alert(f"doc-{suffix}", location="São Paulo")
    try:
        with running(app), served(app) as url:
            publisher.publish([alert])
            store = app.extensions["alert_service.store"]
            wait_for(lambda: store.get(alert.alertId) is not None, timeout=30, what="stored")
            wait_for(
                lambda: requests.get(f"{url}/health", timeout=5).status_code == 200,
                timeout=30,
                what="healthy",
            )
            yield url, alert
    finally:
        publisher.close()


@pytest.mark.parametrize(
    ("path", "url_path"),
    [
        ("/api/v1/alerts", "/api/v1/alerts"),
        ("/api/v1/alerts", "/api/v1/alerts?userId={user}&limit=5"),
        ("/api/v1/alerts", "/api/v1/alerts?limit=0"),
        ("/api/v1/alerts", "/api/v1/alerts?userId=no%20spaces"),
        ("/api/v1/alerts/{alertId}", "/api/v1/alerts/{alert_id}"),
        ("/api/v1/alerts/{alertId}", "/api/v1/alerts/unknown-alert"),
        ("/api/v1/alerts/stream", "/api/v1/alerts/stream?userId=no%20spaces"),
        ("/api/v1/stats", "/api/v1/stats?seconds=60"),
        ("/api/v1/stats", "/api/v1/stats?seconds=0"),
        ("/health", "/health"),
        ("/api/v1/openapi.json", "/api/v1/openapi.json"),
        ("/", "/"),
        ("/dashboard/static/{filename}", "/dashboard/static/dashboard.js"),
        ("/dashboard/static/{filename}", "/dashboard/static/dashboard.css"),
    ],
)
def test_real_responses_match_the_document(
    server: tuple[str, Alert], path: str, url_path: str
) -> None:
    url, alert = server
    target = url_path.format(user=alert.transaction.userId, alert_id=alert.alertId)
    response = requests.get(f"{url}{target}", timeout=10)
    assert_documented(path, "GET", response)
    if target == "/api/v1/openapi.json":
        assert response.json() == DOC


def test_the_stream_response_matches_the_document(server: tuple[str, Alert]) -> None:
    url, _ = server
    with requests.get(
        f"{url}/api/v1/alerts/stream",
        headers={"Last-Event-ID": "unknown"},
        stream=True,
        timeout=10,
    ) as response:
        assert_documented("/api/v1/alerts/stream", "GET", response)
        first = next(response.iter_content(chunk_size=None, decode_unicode=True))
    assert first.startswith("retry: ")
    assert ": unknown Last-Event-ID unknown: starting live\n" in first


def test_unavailable_responses_match_the_document(kafka_bootstrap: str, topics: TopicNames) -> None:
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    settings = alert_settings(kafka_bootstrap, dead_redis, topics, redis_socket_timeout=0.5)
    with closing(create_app(settings)) as app, served(app) as url:
        for path, url_path in [
            ("/api/v1/alerts", "/api/v1/alerts"),
            ("/api/v1/alerts/{alertId}", "/api/v1/alerts/x"),
            ("/api/v1/alerts/stream", "/api/v1/alerts/stream"),
            ("/api/v1/stats", "/api/v1/stats"),
            ("/health", "/health"),
        ]:
            response = requests.get(f"{url}{url_path}", timeout=10)
            assert response.status_code == 503, url_path
            assert_documented(path, "GET", response)


# Fuzzing: the JSON operations (the stream never ends, the page and assets are not JSON).
fuzzed = {
    **DOC,
    "paths": {p: item for p, item in DOC["paths"].items() if p.startswith(("/api/", "/health"))},
}
del fuzzed["paths"]["/api/v1/alerts/stream"]
schema = schemathesis.openapi.from_dict(fuzzed)


@schema.parametrize()
@settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_fuzzing_finds_no_5xx_and_nothing_outside_the_document(
    case: Any, server: tuple[str, Alert]
) -> None:
    case.call_and_validate(
        base_url=server[0],
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_headers_conformance,
            response_schema_conformance,
        ],
    )
