"""The alert-service's JSON API (``/api/v1/alerts``) on a real Redis: order, filter,
limits, and the JSON error contract. Alerts are stored with the service's own store (the
consumer path is covered in test_alert_store.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from alert_service import create_app
from alert_service.store import AlertStore
from fraud_common.schemas import Alert
from tests.conftest import TopicNames
from tests.support.alert_app import alert_settings, closing, json_of
from tests.support.factories import make_alert
from tools.local_services import free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def app(kafka_bootstrap: str, redis_url: str, topics: TopicNames) -> Iterator[Flask]:
    with closing(create_app(alert_settings(kafka_bootstrap, redis_url, topics))) as app:
        yield app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def _store(app: Flask, *alerts: Alert) -> None:
    store: AlertStore = app.extensions["alert_service.store"]
    for alert in alerts:  # one batch each: distinct store times
        store.store([alert])


def _ids(response_json: dict[str, Any]) -> list[str]:
    return [a["alertId"] for a in response_json["alerts"]]


def test_alerts_are_listed_newest_first_and_filtered_by_user(
    app: Flask, client: FlaskClient
) -> None:
    a1, b1, a2, b2, a3 = (make_alert(u) for u in ("ann", "bob", "ann", "bob", "ann"))
    _store(app, a1, b1, a2, b2, a3)

    everything = client.get("/api/v1/alerts")
    assert everything.status_code == 200
    assert everything.headers["Content-Type"] == "application/json"
    assert json_of(everything) == {
        "alerts": [a.model_dump(mode="json", exclude_none=True) for a in (a3, b2, a2, b1, a1)],
        "count": 5,
    }
    assert _ids(json_of(client.get("/api/v1/alerts?userId=ann"))) == [
        a3.alertId,
        a2.alertId,
        a1.alertId,
    ]
    assert _ids(json_of(client.get("/api/v1/alerts?limit=2"))) == [a3.alertId, b2.alertId]
    one = json_of(client.get("/api/v1/alerts?userId=bob&limit=1"))
    assert (one["count"], _ids(one)) == (1, [b2.alertId])
    assert json_of(client.get("/api/v1/alerts?userId=nobody")) == {"alerts": [], "count": 0}


def test_the_default_limit_is_50_and_the_maximum_1000(app: Flask, client: FlaskClient) -> None:
    store: AlertStore = app.extensions["alert_service.store"]
    store.store([make_alert("many") for _ in range(60)])
    assert json_of(client.get("/api/v1/alerts"))["count"] == 50
    assert json_of(client.get("/api/v1/alerts?limit=1000"))["count"] == 60


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=-1", "limit"),
        ("limit=abc", "limit"),
        ("limit=1.5", "limit"),
        ("limit=%EF%BC%91", "limit"),  # a full-width digit is not an integer here
        ("limit=99999999999999999999", "limit"),
        ("userId=not%20valid", "userId"),
        ("userId=" + "u" * 65, "userId"),
        ("userId=%00", "userId"),
    ],
)
def test_bad_parameters_are_a_400_naming_the_field(
    client: FlaskClient, query: str, field: str
) -> None:
    response = client.get(f"/api/v1/alerts?{query}")
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/json"
    error = json_of(response)["error"]
    assert error["code"] == "validation_error"
    assert [d["field"] for d in error["details"]] == [field]


def test_one_alert_by_id_and_a_json_404_for_an_unknown_one(app: Flask, client: FlaskClient) -> None:
    alert = make_alert("carol", location="New York")
    _store(app, alert)

    found = client.get(f"/api/v1/alerts/{alert.alertId}")
    assert found.status_code == 200
    assert json_of(found) == alert.model_dump(mode="json", exclude_none=True)
    assert json_of(found)["transaction"]["amount"] == "25000.00"  # exact, a string

    missing = client.get("/api/v1/alerts/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404
    assert json_of(missing)["error"]["code"] == "not_found"
    assert client.get("/api/v1/alerts/" + "x" * 300).status_code == 404


def test_http_errors_are_json_never_html(app: Flask, client: FlaskClient) -> None:
    def explode() -> str:
        raise RuntimeError("secret internals")

    app.add_url_rule("/test-explode", view_func=explode)

    unknown = client.get("/api/v1/nothing-here")
    assert unknown.status_code == 404
    assert json_of(unknown)["error"]["code"] == "not_found"

    wrong_method = client.post("/api/v1/alerts", json={})
    assert wrong_method.status_code == 405
    assert json_of(wrong_method)["error"]["code"] == "method_not_allowed"
    assert "GET" in wrong_method.headers["Allow"]

    crashed = client.get("/test-explode")
    assert crashed.status_code == 500
    assert json_of(crashed) == {
        "error": {"code": "internal_error", "message": "internal error", "details": []}
    }
    assert b"secret internals" not in crashed.data


def test_redis_away_is_a_503_with_retry_after(kafka_bootstrap: str, topics: TopicNames) -> None:
    settings = alert_settings(
        kafka_bootstrap, f"redis://127.0.0.1:{free_port()}/0", topics, redis_socket_timeout=0.5
    )
    with closing(create_app(settings)) as app:
        client = app.test_client()
        for path in ("/api/v1/alerts", "/api/v1/alerts/some-id", "/api/v1/alerts/stream"):
            response = client.get(path)
            assert response.status_code == 503, path
            assert json_of(response)["error"]["code"] == "service_unavailable"
            assert int(response.headers["Retry-After"]) > 0
        health = client.get("/health")
        assert health.status_code == 503
        assert json_of(health)["redis"] == "disconnected"


def test_health_is_503_while_the_consumer_loop_is_not_running(client: FlaskClient) -> None:
    # The loop starts in the gunicorn worker (post_worker_init); here it never did.
    response = client.get("/health")
    assert response.status_code == 503
    body = json_of(response)
    assert body["status"] == "unhealthy"
    assert (body["redis"], body["kafka"]) == ("connected", "connected")
    assert body["consumer"]["healthy"] is False
    assert body["consumer"]["threadAlive"] is False
