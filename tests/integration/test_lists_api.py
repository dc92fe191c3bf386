"""The lists API over real HTTP against a real Redis: put (201 new, 200 replaced), delete
(204, 404), read with reason and expiry, expiry by TTL, admin keys, bad input as JSON
400s; the store's batch lookup; the served OpenAPI document is true to real responses
and fuzzing the lists endpoints from it finds nothing outside it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import redis
import requests
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from fraud_common import keys
from fraud_common.schemas import Decision
from fraud_detection import create_app
from fraud_detection.lists import MAX_TTL_SECONDS, ListStore, listed_pairs
from fraud_detection.openapi import build_document
from fraud_detection.settings import DetectorSettings
from tests.support.detector_factories import transaction
from tests.support.detector_running import (
    TopicWriter,
    detector_settings,
    new_group,
    read_to_end,
    serve,
    start_detector,
)
from tests.support.transaction_server import assert_conforms
from tools.local_services import RedisServer, wait_for

pytestmark = pytest.mark.integration

KEYS = ("first-admin-key", "second-admin-key")
LISTS = "/api/v1/lists"


def _app(kafka_bootstrap: str, redis_url: str, **overrides: Any) -> Flask:
    return create_app(
        DetectorSettings(
            kafka_bootstrap_servers=kafka_bootstrap,
            redis_url=redis_url,
            log_level="WARNING",
            consumer_group=new_group(),
            app_env="development",  # short test keys
            **overrides,
        )
    )


def _close(app: Flask) -> None:
    for close in app.extensions["fraud_common.closers"]:
        close()


@pytest.fixture(scope="module")
def guarded(kafka_bootstrap: str, redis_server: RedisServer) -> Iterator[str]:
    """The detector's app (no consumer started) with ADMIN_API_KEYS set, over HTTP."""
    app = _app(kafka_bootstrap, redis_server.url, admin_api_keys=",".join(KEYS))
    try:
        with serve(app) as url:
            yield url
    finally:
        _close(app)


@pytest.fixture(scope="module")
def open_api(kafka_bootstrap: str, redis_server: RedisServer) -> Iterator[str]:
    """The same app without ADMIN_API_KEYS: every call is open."""
    app = _app(kafka_bootstrap, redis_server.url)
    try:
        with serve(app) as url:
            yield url
    finally:
        _close(app)


@pytest.fixture
def list_name() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


def entry_url(base: str, name: str, value: str) -> str:
    return f"{base}{LISTS}/{name}/entries/{quote(value, safe='')}"


def admin(key: str = KEYS[0]) -> dict[str, str]:
    return {"X-API-Key": key}


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_put_replace_read_delete(guarded: str, list_name: str, store: redis.Redis) -> None:
    url = entry_url(guarded, list_name, "mallory")
    before = datetime.now(UTC) - timedelta(seconds=1)
    created = requests.put(url, json={"reason": "chargebacks"}, headers=admin(), timeout=10)
    assert created.status_code == 201, created.text
    entry = created.json()["entry"]
    assert created.json()["list"] == list_name
    assert entry["value"] == "mallory" and entry["reason"] == "chargebacks"
    assert entry["expiresAt"] is None
    assert before <= when(entry["addedAt"]) <= datetime.now(UTC)

    replaced = requests.put(url, json={"reason": "fraud ring"}, headers=admin(KEYS[1]), timeout=10)
    assert replaced.status_code == 200, replaced.text
    again = replaced.json()["entry"]
    assert again["reason"] == "fraud ring"
    assert again["addedAt"] == entry["addedAt"]  # first put kept
    assert when(again["updatedAt"]) >= when(entry["updatedAt"])

    no_body = requests.put(entry_url(guarded, list_name, "eve"), headers=admin(), timeout=10)
    assert no_body.status_code == 201
    assert no_body.json()["entry"]["reason"] is None

    listed = requests.get(f"{guarded}{LISTS}/{list_name}", timeout=10)  # no key: reading is open
    assert listed.status_code == 200
    body = listed.json()
    assert body["count"] == 2
    assert [e["value"] for e in body["entries"]] == ["eve", "mallory"]
    assert body["entries"][1]["reason"] == "fraud ring"
    assert store.hlen(keys.list_entries(list_name)) == 2

    assert requests.delete(url, headers=admin(), timeout=10).status_code == 204
    missing = requests.delete(url, headers=admin(), timeout=10)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    remaining = requests.get(f"{guarded}{LISTS}/{list_name}", timeout=10).json()
    assert [e["value"] for e in remaining["entries"]] == ["eve"]
    assert store.zscore(keys.list_expiry(list_name), "mallory") is None


def test_unknown_list_is_empty(guarded: str, list_name: str) -> None:
    response = requests.get(f"{guarded}{LISTS}/{list_name}", timeout=10)
    assert response.status_code == 200
    assert response.json() == {"list": list_name, "entries": [], "count": 0}


def test_ttl_expires_the_entry(guarded: str, list_name: str, store: redis.Redis) -> None:
    url = entry_url(guarded, list_name, "u-ttl")
    put = requests.put(url, json={"ttlSeconds": 1}, headers=admin(), timeout=10)
    assert put.status_code == 201
    entry = put.json()["entry"]
    lifetime = when(entry["expiresAt"]) - when(entry["addedAt"])
    assert lifetime == timedelta(seconds=1)
    lookups = ListStore(store)
    assert lookups.lookup([(list_name, "u-ttl")]) == {(list_name, "u-ttl")}

    def gone() -> bool:
        body = requests.get(f"{guarded}{LISTS}/{list_name}", timeout=10).json()
        return body["count"] == 0 and not lookups.lookup([(list_name, "u-ttl")])

    wait_for(gone, timeout=5, what="the entry to expire")
    # Expired means absent: deleting it is a 404 and putting it again a 201.
    assert requests.delete(url, headers=admin(), timeout=10).status_code == 404
    assert requests.put(url, headers=admin(), timeout=10).status_code == 201


@pytest.mark.parametrize("method", ["put", "delete"])
@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "wrong"}, {"X-API-Key": ""}])
def test_mutations_need_an_admin_key(
    guarded: str, list_name: str, store: redis.Redis, method: str, headers: dict[str, str]
) -> None:
    url = entry_url(guarded, list_name, "someone")
    response = requests.request(method, url, headers=headers, json={"reason": "x"}, timeout=10)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"] == "X-API-Key"
    assert store.exists(keys.list_entries(list_name), keys.list_expiry(list_name)) == 0


def test_without_admin_keys_everything_is_open(open_api: str, list_name: str) -> None:
    url = entry_url(open_api, list_name, "anyone")
    assert requests.put(url, timeout=10).status_code == 201
    assert requests.delete(url, timeout=10).status_code == 204


@pytest.mark.parametrize(
    "value",
    ["Zürich", "a/b", "/leading", "trailing/", "a//b", "100%", "with space", "new\nline", "?#&"],
)
def test_any_value_round_trips(guarded: str, list_name: str, value: str) -> None:
    assert requests.put(entry_url(guarded, list_name, value), headers=admin()).status_code == 201
    body = requests.get(f"{guarded}{LISTS}/{list_name}", timeout=10).json()
    assert [e["value"] for e in body["entries"]] == [value]
    assert requests.delete(entry_url(guarded, list_name, value), headers=admin()).status_code == 204


@pytest.mark.parametrize(
    ("name", "value", "body", "field"),
    [
        ("Upper", "v", None, "list"),
        ("x" * 65, "v", None, "list"),
        ("dot.ted", "v", None, "list"),
        ("ok", "v" * 257, None, "value"),
        ("ok", "v", {"ttlSeconds": 0}, "ttlSeconds"),
        ("ok", "v", {"ttlSeconds": -5}, "ttlSeconds"),
        ("ok", "v", {"ttlSeconds": 1.5}, "ttlSeconds"),
        ("ok", "v", {"ttlSeconds": "60"}, "ttlSeconds"),
        ("ok", "v", {"ttlSeconds": True}, "ttlSeconds"),
        ("ok", "v", {"ttlSeconds": MAX_TTL_SECONDS + 1}, "ttlSeconds"),
        ("ok", "v", {"reason": "r" * 501}, "reason"),
        ("ok", "v", {"reason": 5}, "reason"),
        ("ok", "v", {"why": "x"}, "why"),
        ("ok", "v", [1], "body"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(
    guarded: str, store: redis.Redis, name: str, value: str, body: Any, field: str
) -> None:
    response = requests.put(entry_url(guarded, name, value), json=body, headers=admin(), timeout=10)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert [d["field"] for d in error["details"]] == [field]
    assert store.zscore(keys.list_expiry(name), value) is None


def test_bad_body_media_and_size(guarded: str, list_name: str) -> None:
    url = entry_url(guarded, list_name, "v")
    json_type = {"Content-Type": "application/json", **admin()}
    broken = requests.put(url, data=b"{", headers=json_type, timeout=10)
    assert broken.status_code == 400 and broken.json()["error"]["code"] == "invalid_json"
    text = requests.put(url, data=b"hi", headers={"Content-Type": "text/plain", **admin()})
    assert text.status_code == 415
    huge = requests.put(url, data=b" " * 20000, headers=json_type, timeout=10)
    assert huge.status_code == 413
    assert requests.get(f"{guarded}{LISTS}/Bad", timeout=10).status_code == 400


def test_maximum_ttl_is_accepted(guarded: str, list_name: str) -> None:
    url = entry_url(guarded, list_name, "v")
    response = requests.put(url, json={"ttlSeconds": MAX_TTL_SECONDS}, headers=admin())
    assert response.status_code == 201
    entry = response.json()["entry"]
    assert when(entry["expiresAt"]) - when(entry["addedAt"]) == timedelta(seconds=MAX_TTL_SECONDS)


# --- the store: lookups, lazy expiry ---------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_lookup_is_per_list_and_expiry_is_lazy(store: redis.Redis) -> None:
    clock = Clock()
    lists = ListStore(store, clock=clock)
    block, allow = f"block-{uuid.uuid4().hex[:8]}", f"allow-{uuid.uuid4().hex[:8]}"
    lists.put(block, "u1")
    lists.put(block, "Paris", ttl_seconds=10)
    lists.put(allow, "u2", reason="VIP")
    asked = [(block, "u1"), (block, "u2"), (allow, "u1"), (allow, "u2"), (block, "Paris")]
    assert lists.lookup(asked) == {(block, "u1"), (allow, "u2"), (block, "Paris")}
    assert lists.lookup([("Not A Name", "u1"), (block, ""), (block, "x" * 300)]) == set()
    assert lists.lookup([]) == set()

    clock.now += 10  # expiry is exclusive: at the expiry time the entry is gone
    assert lists.lookup(asked) == {(block, "u1"), (allow, "u2")}
    assert [e.value for e in lists.entries(block)] == ["u1"]
    assert store.hexists(keys.list_entries(block), "Paris")  # still stored: lazy

    lists.put(block, "u3")  # a write prunes what has expired
    assert not store.hexists(keys.list_entries(block), "Paris")
    assert store.zscore(keys.list_expiry(block), "Paris") is None
    assert lists.lookup([(block, "Paris")], at_ms=int((clock.now - 5) * 1000)) == set()


def test_listed_pairs_keys_by_list_and_field(store: redis.Redis) -> None:
    lists = ListStore(store)
    blocked, places = f"blocked-{uuid.uuid4().hex[:8]}", f"places-{uuid.uuid4().hex[:8]}"
    lists.put(blocked, "mallory")
    lists.put(places, "Casino Town")
    lists.put(places, "mallory")  # on places as a value, but no rule reads userId there

    class Ref:
        def __init__(self, name: str, field: str) -> None:
            self.list, self.field = name, field

    refs = [Ref(blocked, "userId"), Ref(places, "location"), Ref(blocked, "location")]
    batch = [
        transaction(user="mallory", location="Paris"),
        transaction(user="alice", location="Casino Town"),
        transaction(user="bob", location="mallory"),
    ]
    assert listed_pairs(lists, refs, batch) == [
        frozenset({(blocked, "userId")}),
        frozenset({(places, "location")}),
        frozenset({(blocked, "location"), (places, "location")}),  # "mallory" as a place
    ]
    assert listed_pairs(lists, [], batch) == [frozenset()] * 3


# --- end to end: the rule in the running detector ----------------------------------------

RULES = """
decision: {review_at: 40, decline_at: 80}
rules:
  - {id: large-amount, type: large_amount, alert_type: large_transaction_detected,
     severity: high, score: 60, params: {threshold_usd: 10000}}
  - {id: blocked-users, type: list_match, alert_type: blocked_user_detected,
     severity: critical, score: 100, params: {list: blocked-users, field: userId}}
  - {id: trusted-users, type: list_match, alert_type: trusted_user, severity: low,
     score: 0, effect: allow, params: {list: trusted-users, field: userId}}
"""


def test_block_then_allow_a_user_in_the_running_detector(
    kafka_bootstrap: str,
    redis_url: str,
    redis_client: redis.Redis,
    topic_factory: Any,
    tmp_path: Path,
) -> None:
    topics = topic_factory()
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(RULES)
    detector = start_detector(
        detector_settings(
            kafka_bootstrap, redis_url, topics, new_group(), rules_file=str(rules_file)
        )
    )
    try:
        with serve(detector.app) as url:
            assert requests.put(entry_url(url, "blocked-users", "mallory")).status_code == 201
            writer = TopicWriter(kafka_bootstrap, topics.transactions)

            def decided(txn_id: str) -> Decision:
                wait_for(
                    lambda: redis_client.exists(keys.decision(txn_id)) == 1,
                    timeout=30,
                    what=f"the decision of {txn_id}",
                )
                return Decision.model_validate_json(redis_client.get(keys.decision(txn_id)) or "")

            small = transaction(user="mallory", amount="5", at=datetime.now(UTC))
            writer.send([small])
            blocked = decided(small.transactionId)
            assert blocked.status == "decline"
            assert [r.ruleId for r in blocked.reasons] == ["blocked-users"]

            assert requests.delete(entry_url(url, "blocked-users", "mallory")).status_code == 204
            again = transaction(user="mallory", amount="5", at=datetime.now(UTC))
            writer.send([again])
            assert decided(again.transactionId).status == "approve"

            assert requests.put(entry_url(url, "trusted-users", "bigspender")).status_code == 201
            big = transaction(user="bigspender", amount="50000", at=datetime.now(UTC))
            writer.send([big])
            allowed = decided(big.transactionId)
            assert allowed.status == "approve" and allowed.reasons == []
            assert allowed.allowedBy == "trusted-users"
            alerts = read_to_end(kafka_bootstrap, topics.alerts)
            about = [m for m in alerts if big.transactionId.encode() in (m.value() or b"")]
            assert about == [], "an allow-list hit suppresses every alert"
            assert any(blocked.transactionId.encode() in (m.value() or b"") for m in alerts)
    finally:
        detector.stop()


# --- the OpenAPI document -------------------------------------------------------------

DOCUMENT = build_document()
schema = schemathesis.openapi.from_dict(DOCUMENT).include(path_regex="^/api/v1/lists")


def test_document_covers_every_route(
    guarded: str, kafka_bootstrap: str, redis_server: RedisServer
) -> None:
    served = requests.get(f"{guarded}/api/v1/openapi.json", timeout=10)
    assert served.status_code == 200
    assert served.json() == DOCUMENT
    assert DOCUMENT["openapi"] == "3.1.0"
    app = _app(kafka_bootstrap, redis_server.url)
    try:
        routes = {
            (
                rule.rule.replace("<name>", "{list}").replace("<list_value:value>", "{value}"),
                method.lower(),
            )
            for rule in app.url_map.iter_rules()
            for method in rule.methods or ()
            if method not in ("HEAD", "OPTIONS") and rule.endpoint != "static"
        }
    finally:
        _close(app)
    documented = {(path, method) for path, ops in DOCUMENT["paths"].items() for method in ops}
    assert routes == documented


def test_real_responses_conform(guarded: str, list_name: str) -> None:
    one = "/api/v1/lists/{list}/entries/{value}"
    url = entry_url(guarded, list_name, "v")

    def check(path: str, method: str, response: requests.Response, status: int) -> None:
        assert response.status_code == status, response.text
        assert_conforms(DOCUMENT, path, method, response)

    check(one, "put", requests.put(url, json={"ttlSeconds": 60}, headers=admin()), 201)
    check(one, "put", requests.put(url, json={"reason": "r"}, headers=admin()), 200)
    check(one, "put", requests.put(url, json={"ttlSeconds": 0}, headers=admin()), 400)
    check(one, "put", requests.put(url, data=b"x", headers=admin()), 415)
    check(one, "put", requests.put(url), 401)
    check(one, "delete", requests.delete(url), 401)
    check("/api/v1/lists/{list}", "get", requests.get(f"{guarded}{LISTS}/{list_name}"), 200)
    check("/api/v1/lists/{list}", "get", requests.get(f"{guarded}{LISTS}/NO"), 400)
    deleted = requests.delete(url, headers=admin(), timeout=10)
    assert deleted.status_code == 204 and "204" in DOCUMENT["paths"][one]["delete"]["responses"]
    check(one, "delete", requests.delete(url, headers=admin()), 404)


@schema.parametrize()
@settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_fuzzing_finds_no_5xx_and_nothing_outside_the_document(case: Any, open_api: str) -> None:
    case.call_and_validate(
        base_url=open_api,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
