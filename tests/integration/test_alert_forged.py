"""A forged message on fraud-alerts (an id that is not a UUID, oversized fields) fails to
decode and is dead-lettered; it is never stored, streamed or listed. The real consumer on
the real broker and Redis."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis

from alert_service import create_app
from fraud_common import keys
from fraud_common.schemas import MAX_ALERT_DETAILS_BYTES, MAX_ALERT_MESSAGE
from tests.conftest import TopicNames
from tests.support.alert_app import AlertPublisher, alert_settings, headers_of, running
from tests.support.factories import make_alert
from tests.support.kafka_reading import read_topic
from tools.local_services import wait_for

pytestmark = pytest.mark.integration


def _forged(**changes: Any) -> bytes:
    body: dict[str, Any] = make_alert("u-forged").model_dump(mode="json", exclude_none=True)
    body.update(changes)
    return json.dumps(body).encode()


def test_forged_alerts_go_to_the_dlq_and_are_never_stored(
    kafka_bootstrap: str, redis_url: str, redis_client: redis.Redis, topics: TopicNames
) -> None:
    app = create_app(alert_settings(kafka_bootstrap, redis_url, topics))
    publisher = AlertPublisher(kafka_bootstrap, topics.alerts)
    forged = [
        _forged(alertId="fraud:alerts:recent"),  # would name another Redis key
        _forged(alertId="x" * 100),
        _forged(message="m" * (MAX_ALERT_MESSAGE + 1)),
        _forged(details={"blob": "d" * MAX_ALERT_DETAILS_BYTES}),
        _forged(alertType="<img src=x onerror=alert(1)>"),
    ]
    genuine = make_alert("u-forged")
    try:
        with running(app):
            publisher.publish_raw((value, "u-forged") for value in forged)
            publisher.publish([genuine])  # same key: after the forged ones on its partition
            store = app.extensions["alert_service.store"]
            wait_for(lambda: store.get(genuine.alertId) is not None, timeout=30, what="stored")
            dead = read_topic(kafka_bootstrap, topics.alerts_dlq, expect=len(forged), timeout=30)
            assert sorted(m.value() or b"" for m in dead) == sorted(forged)
            for message in dead:
                assert "not a valid alert" in headers_of(message)["dlq-error"]
            assert redis_client.xlen(keys.ALERTS_STREAM) == 1
            assert redis_client.zrevrange(keys.ALERTS_RECENT, 0, -1) == [genuine.alertId]
    finally:
        publisher.close()
