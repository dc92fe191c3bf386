"""With ``API_KEYS`` set, every data route of the alert-service needs a valid
``X-API-Key`` (alerts, one alert, the stream, the stats); the dashboard page, ``/health``,
``/metrics`` and the OpenAPI document stay open. Over real HTTP on a real Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from flask import Flask

from alert_service import create_app
from alert_service.openapi import document
from alert_service.store import AlertStore
from alert_service.stream import SHUTDOWN_EXTENSION
from tests.conftest import TopicNames
from tests.support.alert_app import alert_settings, closing, served
from tests.support.alert_sse import SseSubscriber
from tests.support.factories import make_alert
from tests.support.transaction_server import assert_conforms

pytestmark = pytest.mark.integration

KEYS = ("first-alert-key", "second-alert-key")
OPEN = {"/", "/health", "/metrics", "/api/v1/openapi.json"}


@pytest.fixture(scope="module")
def keyed(kafka_bootstrap: str, redis_server_url: str) -> Iterator[tuple[Flask, str]]:
    topics = TopicNames("transactions-keys", "fraud-alerts-keys")
    settings = alert_settings(kafka_bootstrap, redis_server_url, topics, api_keys=",".join(KEYS))
    with closing(create_app(settings)) as app, served(app) as url:
        yield app, url


def _data_routes(app: Flask, values: dict[str, str]) -> list[str]:
    """Every GET route of the app except the open ones, with its parameter filled in."""
    paths = []
    for rule in app.url_map.iter_rules():
        path = str(rule.rule)
        if (
            path in OPEN
            or path.startswith(("/dashboard/static/", "/static/"))
            or "GET" not in (rule.methods or ())
        ):
            continue
        for argument in rule.arguments:
            path = path.replace(f"<{argument}>", values[argument])
        paths.append(path)
    return sorted(paths)


def test_every_data_route_is_401_without_a_valid_key_and_200_with_one(
    keyed: tuple[Flask, str],
) -> None:
    app, url = keyed
    alert = make_alert("keyed-user")
    store: AlertStore = app.extensions["alert_service.store"]
    store.store([alert])
    case_id = app.extensions["alert_service.cases"].add_alerts([alert])[0].case_id
    values = {"alertId": alert.alertId, "caseId": case_id}
    routes = _data_routes(app, values)
    assert {
        "/api/v1/alerts",
        f"/api/v1/alerts/{alert.alertId}",
        "/api/v1/alerts/stream",
        "/api/v1/stats",
    } <= set(routes)

    for path in routes:
        for headers in ({}, {"X-API-Key": "wrong"}, {"X-API-Key": ""}):
            response = requests.get(url + path, headers=headers, timeout=10)
            assert response.status_code == 401, (path, headers, response.text[:200])
            assert response.headers["WWW-Authenticate"] == "X-API-Key"
            assert response.json()["error"]["code"] == "unauthorized"
            assert "keyed-user" not in response.text
            assert_conforms(document(), _template(path, values), "get", response)
        if path == "/api/v1/alerts/stream":
            for key in KEYS:
                with SseSubscriber(url + path, headers={"X-API-Key": key}) as sub:
                    sub.wait_connected()
                    assert sub.status == 200, sub.comments
            # A key in the URL is not a key: only the header counts.
            response = requests.get(f"{url}{path}?apiKey={KEYS[0]}", timeout=10)
            assert response.status_code == 401
            continue
        for key in KEYS:
            response = requests.get(url + path, headers={"X-API-Key": key}, timeout=10)
            assert response.status_code == 200, (path, response.text[:200])
    listed = requests.get(
        f"{url}/api/v1/alerts?userId=keyed-user", headers={"X-API-Key": KEYS[1]}, timeout=10
    )
    assert [a["alertId"] for a in listed.json()["alerts"]] == [alert.alertId]


def test_health_metrics_page_and_document_stay_open(keyed: tuple[Flask, str]) -> None:
    _app, url = keyed
    assert requests.get(f"{url}/health", timeout=10).status_code in (200, 503)  # no loop here
    assert requests.get(f"{url}/health", timeout=10).status_code != 401
    metrics = requests.get(f"{url}/metrics", timeout=10)
    assert metrics.status_code == 200
    assert "fraud_http_requests_total" in metrics.text
    page = requests.get(f"{url}/", timeout=10)
    assert page.status_code == 200
    assert "text/html" in page.headers["Content-Type"]
    assert requests.get(f"{url}/api/v1/openapi.json", timeout=10).status_code == 200


def test_without_keys_the_data_routes_are_open(
    kafka_bootstrap: str, redis_url: str, topics: TopicNames
) -> None:
    with closing(create_app(alert_settings(kafka_bootstrap, redis_url, topics))) as app:
        app.extensions[SHUTDOWN_EXTENSION].set()  # the stream answers and ends at once
        client = app.test_client()
        for path in ("/api/v1/alerts", "/api/v1/stats", "/api/v1/alerts/stream"):
            assert client.get(path).status_code == 200, path


def _template(path: str, values: dict[str, str]) -> str:
    """The document's path for a served one."""
    for name, value in values.items():
        path = path.replace(value, f"{{{name}}}")
    return path
