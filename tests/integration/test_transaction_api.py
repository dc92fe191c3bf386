"""The transaction-service's HTTP API over real HTTP (gunicorn), real Tansu, real Redis."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
import requests
from confluent_kafka import Message

from fraud_common import keys
from fraud_common.schemas import Decision, Reason, alert_id
from tests.support.transaction_server import (
    PARTITIONS,
    assert_conforms,
    new_topics,
    read_messages,
    transaction_server,
)
from tools.devstack import ServiceProcess
from tools.local_services import wait_for

pytestmark = pytest.mark.integration

TRANSACTIONS = "/api/v1/transactions"
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def service_topics(kafka_bootstrap: str) -> dict[str, str]:
    return new_topics(kafka_bootstrap)


@pytest.fixture(scope="module")
def server(
    kafka_bootstrap: str, redis_server_url: str, service_topics: dict[str, str]
) -> Iterator[ServiceProcess]:
    env = {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "REDIS_URL": redis_server_url}
    with transaction_server({**env, **service_topics}, workers=2) as running:
        yield running


class Api:
    """Requests to one running service."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.session = requests.Session()

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.session.request(method, f"{self.base_url}{path}", timeout=10, **kwargs)

    def send(
        self, data: Any, headers: dict[str, str], path: str = TRANSACTIONS
    ) -> requests.Response:
        return self.request("POST", path, data=data, headers=headers)

    def post(self, body: Any, path: str = TRANSACTIONS, **headers: str) -> requests.Response:
        return self.send(json.dumps(body).encode(), {**JSON, **headers}, path)

    def get(self, path: str, **headers: str) -> requests.Response:
        return self.request("GET", path, headers=headers)


@pytest.fixture
def api(server: ServiceProcess, redis_url: str) -> Iterator[Api]:
    """Requests to the running service; Redis is emptied before each test."""
    client = Api(server.url)
    yield client
    client.session.close()


def a_transaction(**fields: Any) -> dict[str, Any]:
    return {
        "userId": f"user-{uuid.uuid4().hex[:12]}",
        "amount": "12.50",
        "currency": "USD",
        "location": "New York",
        **fields,
    }


def messages_of(
    kafka_bootstrap: str, topic: str, user_id: str, expect: int, settle: float = 0.0
) -> list[Message]:
    def mine(message: Message) -> bool:
        return message.key() == user_id.encode()

    return read_messages(
        kafka_bootstrap, topic, expect=expect, partitions=PARTITIONS, keep=mine, settle=settle
    )


def error_of(response: requests.Response) -> dict[str, Any]:
    assert response.headers["Content-Type"].startswith("application/json"), response.text
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"code", "message", "details"}
    return error


# --- accepted -----------------------------------------------------------------------


def test_created_is_stored_and_published_with_the_exact_amount(
    api: Api,
    redis_client: redis.Redis,
    kafka_bootstrap: str,
    service_topics: dict[str, str],
) -> None:
    body = a_transaction(amount="12345678.123456789", currency="eur", latitude=40.7, longitude=-74)
    response = api.post(body)

    assert response.status_code == 201, response.text
    created = response.json()
    transaction_id = created["transactionId"]
    assert created["status"] == "success"
    assert response.headers["Location"] == f"{TRANSACTIONS}/{transaction_id}"
    assert created["transaction"]["amount"] == "12345678.123456789"
    assert created["transaction"]["currency"] == "EUR"

    stored = json.loads(redis_client.get(keys.transaction(transaction_id)) or "null")
    assert stored == created["transaction"]
    assert 0 < redis_client.ttl(keys.transaction(transaction_id)) <= 7 * 24 * 3600

    [message] = messages_of(
        kafka_bootstrap, service_topics["TRANSACTIONS_TOPIC"], body["userId"], 1
    )
    assert message.key() == body["userId"].encode()
    published = json.loads(message.value() or b"")
    assert published == created["transaction"]
    assert published["amount"] == "12345678.123456789"
    assert dict(message.headers() or [])["transaction-id"] == transaction_id.encode()


def test_get_is_pending_until_a_decision_is_recorded(api: Api, redis_client: redis.Redis) -> None:
    created = api.post(a_transaction()).json()
    transaction_id = created["transactionId"]

    pending = api.get(f"{TRANSACTIONS}/{transaction_id}")
    assert pending.status_code == 200
    assert pending.json() == {
        **created["transaction"],
        "status": "pending",
        "riskScore": None,
        "alerts": [],
        "evaluatedAt": None,
    }

    reason = Reason(
        ruleId="large-amount",
        alertType="large_transaction_detected",
        severity="high",
        score=80,
        message="large",
        details={"threshold": "10000"},
    )
    shadow = reason.model_copy(update={"ruleId": "large-amount-2000", "score": 60})
    decision = Decision(
        transactionId=transaction_id,
        status="review",
        riskScore=80,
        reasons=[reason],
        rulesVersion="v-1",
        shadowHits=[shadow],
        evaluatedAt=datetime(2026, 1, 31, 12, 0, 1, tzinfo=UTC),
    )
    redis_client.set(keys.decision(transaction_id), decision.to_json())

    decided = api.get(f"{TRANSACTIONS}/{transaction_id}").json()
    assert decided["status"] == "review"
    assert decided["riskScore"] == 80
    assert decided["rulesVersion"] == "v-1"
    assert decided["reasons"] == [
        {
            "ruleId": "large-amount",
            "alertType": "large_transaction_detected",
            "severity": "high",
            "score": 80,
            "message": "large",
        }
    ]
    assert decided["alerts"] == [
        {
            "alertId": alert_id(transaction_id, "large_transaction_detected"),
            "alertType": "large_transaction_detected",
            "severity": "high",
            "message": "large",
        }
    ]
    assert decided["shadowHits"] == [
        {
            "ruleId": "large-amount-2000",
            "alertType": "large_transaction_detected",
            "severity": "high",
            "score": 60,
            "message": "large",
        }
    ]
    assert decided["evaluatedAt"] == "2026-01-31T12:00:01.000Z"
    assert decided["amount"] == "12.50"


def test_unexpected_failure_is_a_json_500_without_details(
    api: Api, redis_client: redis.Redis, server: ServiceProcess
) -> None:
    """A corrupt decision record (a bug elsewhere) must not leak a stack trace."""
    transaction_id = api.post(a_transaction()).json()["transactionId"]
    redis_client.set(keys.decision(transaction_id), "{not json")
    response = api.get(f"{TRANSACTIONS}/{transaction_id}")
    assert response.status_code == 500
    assert error_of(response) == {
        "code": "internal_error",
        "message": "internal error",
        "details": [],
    }
    assert "Traceback" not in response.text
    wait_for(
        lambda: "unhandled error" in server.log_path.read_text(errors="replace"),
        timeout=10,
        what="the logged error",
    )


def test_unknown_transaction_is_404_json(api: Api) -> None:
    response = api.get(f"{TRANSACTIONS}/{uuid.uuid4()}")
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/nowhere", 404, "not_found"),
        ("GET", "/api/v1/transactions/a/b", 404, "not_found"),
        ("DELETE", TRANSACTIONS, 405, "method_not_allowed"),
        ("PUT", f"{TRANSACTIONS}/batch", 405, "method_not_allowed"),
        ("POST", "/api/v1/health", 405, "method_not_allowed"),
    ],
)
def test_routing_errors_are_json(api: Api, method: str, path: str, status: int, code: str) -> None:
    response = api.request(method, path)
    assert response.status_code == status
    assert error_of(response)["code"] == code
    if status == 405:
        assert "Allow" in response.headers


def test_health(api: Api) -> None:
    response = api.get("/api/v1/health")
    assert response.status_code == 200
    assert response.json() == {"status": "healthy", "redis": "connected", "kafka": "connected"}


# --- refused: issue 3's hand-written list --------------------------------------------

FUTURE = (datetime.now(UTC) + timedelta(days=1)).isoformat()  # stays future all run long


def _body(**fields: Any) -> bytes:
    return json.dumps(a_transaction(**fields)).encode()


BAD_INPUTS = [
    pytest.param(b"", JSON, 400, "invalid_json", None, id="empty body"),
    pytest.param(b"[]", JSON, 400, "validation_error", "body", id="array"),
    pytest.param(b"null", JSON, 400, "validation_error", "body", id="null"),
    pytest.param(b"{" * 10 + b"x", JSON, 400, "invalid_json", None, id="broken json"),
    pytest.param(
        b'{"amount": ' + b"1" * (1 << 20) + b"}", JSON, 413, "payload_too_large", None, id="1 MB"
    ),
    pytest.param(_body(), {"Content-Type": "text/plain"}, 415, "unsupported_media_type", None),
    pytest.param(_body(), {"Content-Type": "application/x-www-form-urlencoded"}, 415, None, None),
    pytest.param(_body(), {}, 415, "unsupported_media_type", None, id="no content type"),
    pytest.param(
        b'{"userId":"u","amount":1e400,"currency":"USD","location":"x"}',
        JSON,
        400,
        "validation_error",
        "amount",
        id="amount 1e400 literal",
    ),
    pytest.param(_body(amount="1e400"), JSON, 400, "validation_error", "amount", id="1e400"),
    pytest.param(
        b'{"userId":"u","amount":NaN,"currency":"USD","location":"x"}',
        JSON,
        400,
        "invalid_json",
        None,
        id="NaN",
    ),
    pytest.param(_body(amount=True), JSON, 400, "validation_error", "amount", id="true"),
    pytest.param(_body(amount=-5), JSON, 400, "validation_error", "amount", id="-5"),
    pytest.param(_body(amount=0), JSON, 400, "validation_error", "amount", id="0"),
    pytest.param(_body(amount="abc"), JSON, 400, "validation_error", "amount", id="abc"),
    pytest.param(_body(userId="u" * 65), JSON, 400, "validation_error", "userId", id="userId 65"),
    pytest.param(_body(currency="XYZ"), JSON, 400, "validation_error", "currency", id="XYZ"),
    pytest.param(_body(merchant="ACME"), JSON, 400, "validation_error", "merchant", id="unknown"),
    pytest.param(
        b'{"userId":"u","amount":"1","currency":"USD","location":"\xff\xfe"}',
        JSON,
        400,
        "invalid_json",
        None,
        id="invalid utf-8",
    ),
    pytest.param(_body(timestamp=FUTURE), JSON, 400, "validation_error", "timestamp", id="future"),
]


@pytest.mark.parametrize(("body", "headers", "status", "code", "field"), BAD_INPUTS)
def test_bad_input_gets_its_documented_4xx_and_nothing_is_kept(
    api: Api,
    redis_client: redis.Redis,
    body: bytes,
    headers: dict[str, str],
    status: int,
    code: str | None,
    field: str | None,
) -> None:
    response = api.send(body, headers)
    assert response.status_code == status, response.text
    error = error_of(response)
    if code:
        assert error["code"] == code
    if field:
        assert field in [d["field"] for d in error["details"]], error
    assert "Traceback" not in response.text
    assert redis_client.keys("fraud:txn:*") == []


def test_chunked_body_over_the_limit_is_413(api: Api) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"location": "'
        for _ in range(80):
            yield b"x" * 1024
        yield b'"}'

    response = api.send(chunks(), JSON)
    assert response.status_code == 413
    assert error_of(response)["code"] == "payload_too_large"


def test_chunked_body_under_the_limit_is_accepted(api: Api) -> None:
    body = json.dumps(a_transaction()).encode()
    response = api.send(iter([body[:10], body[10:]]), JSON)
    assert response.status_code == 201, response.text


# --- Idempotency-Key ----------------------------------------------------------------


def test_same_key_and_body_replays_the_first_response_and_publishes_once(
    api: Api, kafka_bootstrap: str, service_topics: dict[str, str]
) -> None:
    body, key = a_transaction(), str(uuid.uuid4())
    first = api.post(body, **{"Idempotency-Key": key})
    again = api.post(body, **{"Idempotency-Key": key})

    assert first.status_code == again.status_code == 201
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert again.headers["Location"] == first.headers["Location"]
    topic = service_topics["TRANSACTIONS_TOPIC"]
    assert len(messages_of(kafka_bootstrap, topic, body["userId"], 1, settle=1.0)) == 1


def test_same_key_with_another_body_is_422(api: Api) -> None:
    body, key = a_transaction(), str(uuid.uuid4())
    assert api.post(body, **{"Idempotency-Key": key}).status_code == 201
    response = api.post({**body, "amount": "13"}, **{"Idempotency-Key": key})
    assert response.status_code == 422
    assert error_of(response)["code"] == "idempotency_key_mismatch"


def test_key_derives_the_transaction_id(api: Api) -> None:
    """Two services (or a retry after a 503) with the same key mint the same id."""
    key = str(uuid.uuid4())
    body = a_transaction()
    first = api.post(body, **{"Idempotency-Key": key}).json()["transactionId"]
    uuid.UUID(first)
    other_key = api.post(body, **{"Idempotency-Key": key + "x"}).json()["transactionId"]
    assert other_key != first


def test_failed_request_releases_its_key(api: Api) -> None:
    key = str(uuid.uuid4())
    refused = api.post(a_transaction(amount=-1), **{"Idempotency-Key": key})
    assert refused.status_code == 400
    assert api.post(a_transaction(), **{"Idempotency-Key": key}).status_code == 201


@pytest.mark.parametrize("key", ["", "k" * 256])
def test_bad_key_is_400_naming_the_header(api: Api, key: str) -> None:
    response = api.post(a_transaction(), **{"Idempotency-Key": key})
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "validation_error"
    assert error["details"][0]["field"] == "Idempotency-Key"


def test_key_of_255_chars_is_fine(api: Api) -> None:
    assert api.post(a_transaction(), **{"Idempotency-Key": "k" * 255}).status_code == 201


def test_concurrent_requests_with_one_key_publish_once(
    api: Api,
    server: ServiceProcess,
    kafka_bootstrap: str,
    service_topics: dict[str, str],
) -> None:
    """Ten clients at once, spread over both gunicorn workers: one 201, the rest 409 or
    the replayed 201, a single message on the topic."""
    body, key = a_transaction(), str(uuid.uuid4())
    start = threading.Barrier(10)

    def send(_: int) -> requests.Response:
        own = Api(server.url)  # its own connection, so both workers take requests
        start.wait(10)
        return own.post(body, **{"Idempotency-Key": key})

    with ThreadPoolExecutor(10) as pool:
        responses = list(pool.map(send, range(10)))

    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) <= {201, 409}, statuses
    created = [r for r in responses if r.status_code == 201]
    originals = [r for r in created if "Idempotent-Replayed" not in r.headers]
    assert len(originals) == 1, statuses
    assert {r.json()["transactionId"] for r in created} == {originals[0].json()["transactionId"]}
    for conflict in (r for r in responses if r.status_code == 409):
        assert error_of(conflict)["code"] == "idempotency_key_in_flight"
    topic = service_topics["TRANSACTIONS_TOPIC"]
    assert len(messages_of(kafka_bootstrap, topic, body["userId"], 1, settle=1.0)) == 1


# --- batch --------------------------------------------------------------------------

BATCH = f"{TRANSACTIONS}/batch"


def test_batch_answers_ids_in_order_and_publishes_each(
    api: Api, kafka_bootstrap: str, service_topics: dict[str, str]
) -> None:
    user = f"user-{uuid.uuid4().hex[:12]}"
    items = [a_transaction(userId=user, amount=str(i + 1)) for i in range(25)]
    response = api.post({"transactions": items}, BATCH)

    assert response.status_code == 201, response.text
    answer = response.json()
    assert answer["status"] == "success"
    assert answer["count"] == 25
    ids = answer["transactionIds"]
    assert len(set(ids)) == 25
    amounts = [api.get(f"{TRANSACTIONS}/{i}").json()["amount"] for i in ids]
    assert amounts == [str(i + 1) for i in range(25)]

    # One user -> one partition -> published in the order of the request.
    messages = messages_of(kafka_bootstrap, service_topics["TRANSACTIONS_TOPIC"], user, 25)
    assert [json.loads(m.value() or b"")["transactionId"] for m in messages] == ids


def test_batch_is_all_or_nothing_with_indexed_details(api: Api, redis_client: redis.Redis) -> None:
    items = [a_transaction() for _ in range(5)]
    items[1]["amount"] = -5
    items[3] = {**items[3], "currency": "XYZ", "merchant": "ACME"}
    items[4] = []  # type: ignore[call-overload]
    response = api.post({"transactions": items}, BATCH)

    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "validation_error"
    assert sorted(d["field"] for d in error["details"]) == [
        "transactions[1].amount",
        "transactions[3].currency",
        "transactions[3].merchant",
        "transactions[4]",
    ]
    assert redis_client.keys("fraud:txn:*") == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"transactions": []}, "transactions"),
        ({"transactions": [a_transaction() for _ in range(1001)]}, "transactions"),
        ({"transactions": {}}, "transactions"),
        ({}, "transactions"),
        ({"transactions": [a_transaction()], "extra": 1}, "extra"),
        ([a_transaction()], "body"),
    ],
    ids=["empty", "1001 items", "not an array", "missing", "unknown field", "array body"],
)
def test_batch_shape_is_validated(
    api: Api, redis_client: redis.Redis, body: Any, field: str
) -> None:
    response = api.post(body, BATCH)
    assert response.status_code == 400, response.text
    assert field in [d["field"] for d in error_of(response)["details"]]
    assert redis_client.keys("fraud:txn:*") == []


def test_batch_with_idempotency_key(api: Api) -> None:
    key = str(uuid.uuid4())
    body = {"transactions": [a_transaction(), a_transaction()]}
    first = api.post(body, BATCH, **{"Idempotency-Key": key})
    again = api.post(body, BATCH, **{"Idempotency-Key": key})
    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["transactionIds"] == first.json()["transactionIds"]
    other = api.post({"transactions": body["transactions"][:1]}, BATCH, **{"Idempotency-Key": key})
    assert other.status_code == 422
    # The same key on the single endpoint is another request, not a replay.
    assert api.post(body["transactions"][0], **{"Idempotency-Key": key}).status_code == 422


# --- API keys -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def keyed_server(
    kafka_bootstrap: str, redis_server_url: str, service_topics: dict[str, str]
) -> Iterator[ServiceProcess]:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "REDIS_URL": redis_server_url,
        "API_KEYS": "first-key, second-key",
        **service_topics,
    }
    with transaction_server(env, workers=1) as running:
        yield running


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"X-API-Key": ""}, 401),
        ({"X-API-Key": "wrong"}, 401),
        ({"X-API-Key": "second-key-and-more"}, 401),
        ({"X-API-Key": "second-key"}, 201),
        ({"X-API-Key": "first-key"}, 201),
    ],
)
def test_api_keys_guard_transactions(
    keyed_server: ServiceProcess, redis_url: str, headers: dict[str, str], status: int
) -> None:
    url = f"{keyed_server.url}{TRANSACTIONS}"
    response = requests.post(url, json=a_transaction(), headers=headers, timeout=10)
    assert response.status_code == status, response.text
    if status == 401:
        assert error_of(response)["code"] == "unauthorized"
        lookup = requests.get(f"{url}/{uuid.uuid4()}", headers=headers, timeout=10)
        assert lookup.status_code == 401
        batch = requests.post(
            f"{url}/batch", json={"transactions": []}, headers=headers, timeout=10
        )
        assert batch.status_code == 401
        document = requests.get(f"{keyed_server.url}/api/v1/openapi.json", timeout=10).json()
        assert_conforms(document, TRANSACTIONS, "post", response)
        assert_conforms(document, f"{TRANSACTIONS}/batch", "post", batch)
        assert_conforms(document, f"{TRANSACTIONS}/{{transactionId}}", "get", lookup)


def test_health_and_openapi_stay_open_with_api_keys(keyed_server: ServiceProcess) -> None:
    assert requests.get(f"{keyed_server.url}/api/v1/health", timeout=10).status_code == 200
    assert requests.get(f"{keyed_server.url}/api/v1/openapi.json", timeout=10).status_code == 200
