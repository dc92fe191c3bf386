"""From a transaction and its state snapshot to a decision, from a decision to its alerts;
message decoding."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import pytest

from fraud_common.kafka.consumer_loop import InvalidMessage
from fraud_common.money import load_fx_rates
from fraud_common.schemas import Alert, Decision, alert_id
from fraud_detection.evaluation import alerts_for, error_decision, evaluate, place_of
from fraud_detection.geo import load_gazetteer
from fraud_detection.handler import TransactionHandler
from fraud_detection.state import LastSeen, Snapshot, epoch_ms, from_epoch_ms
from tests.support.detector_factories import T0, transaction
from tests.support.rules_files import shipped_rules

RULES = shipped_rules()


def _snapshot(txn, *, earlier=(), previous: LastSeen | None = None, replayed=False) -> Snapshot:
    times = sorted([epoch_ms(txn.timestamp), *(epoch_ms(t) for t in earlier)], reverse=True)
    return Snapshot(
        recent_event_ms=tuple(times),
        previous=previous,
        evaluated_at_ms=epoch_ms(txn.timestamp) + 7,
        replayed=replayed,
    )


def test_explicit_coordinates_win_over_the_name() -> None:
    gazetteer = load_gazetteer()
    named = place_of(transaction(location="Tokyo"), gazetteer)
    explicit = place_of(transaction(location="Tokyo", latitude=1.5, longitude=2.5), gazetteer)
    assert named.coordinates == gazetteer.resolve("Tokyo")
    assert explicit.coordinates is not None
    assert (explicit.coordinates.latitude, explicit.coordinates.longitude) == (1.5, 2.5)


def test_same_snapshot_same_alerts_ids_and_timestamps() -> None:
    txn = transaction(amount="12000", location="Tokyo", at=T0 + timedelta(seconds=2))
    new_york = load_gazetteer().resolve("New York")
    previous = LastSeen("before", "New York", new_york, epoch_ms(T0))
    place = place_of(txn, load_gazetteer())
    first = evaluate(RULES, txn, place, _snapshot(txn, previous=previous), load_fx_rates())
    again = evaluate(
        RULES, txn, place, _snapshot(txn, previous=previous, replayed=True), load_fx_rates()
    )
    assert first == again
    assert [a.to_json() for a in alerts_for(txn, first)] == [
        a.to_json() for a in alerts_for(txn, Decision.model_validate_json(first.to_json()))
    ], "alerts from the stored decision are the alerts first sent"
    alerts = alerts_for(txn, first)
    assert {a.alertType for a in alerts} == {
        "large_transaction_detected",
        "unusual_location_change_detected",
    }
    for alert in alerts:
        assert alert.alertId == alert_id(txn.transactionId, alert.alertType)
        assert alert.timestamp == from_epoch_ms(epoch_ms(txn.timestamp) + 7)
        parsed = Alert.model_validate_json(alert.to_json())  # what the alert-service reads
        assert parsed.transaction == txn
        assert (parsed.rulesVersion, parsed.riskScore, parsed.decision) == (
            RULES.version,
            88,  # 60 and 70 combined: 1 - 0.4 * 0.3
            "decline",
        )
    assert {a.ruleId for a in alerts} == {"large-amount", "location-change"}
    by_type = {a.alertType: Alert.model_validate_json(a.to_json()).details for a in alerts}
    assert by_type["large_transaction_detected"]["threshold"] == "10000"  # exact, as a string
    assert by_type["unusual_location_change_detected"]["previous_location"] == "New York"


def test_decision_records_the_verdict_and_its_reasons() -> None:
    txn = transaction(amount="12000")
    decision = evaluate(
        RULES, txn, place_of(txn, load_gazetteer()), _snapshot(txn), load_fx_rates()
    )
    stored = Decision.model_validate_json(decision.to_json())
    assert stored.status == "review"
    assert stored.riskScore == 60
    assert stored.rulesVersion == RULES.version
    assert [(r.ruleId, r.alertType, r.score) for r in stored.reasons] == [
        ("large-amount", "large_transaction_detected", 60)
    ]
    assert [a.alertType for a in stored.alerts()] == ["large_transaction_detected"]
    clean = transaction()
    verdict = evaluate(
        RULES, clean, place_of(clean, load_gazetteer()), _snapshot(clean), load_fx_rates()
    )
    assert (verdict.status, verdict.riskScore, verdict.reasons) == ("approve", 0, [])


def test_an_error_decision_has_a_reason_and_no_score() -> None:
    decision = error_decision("t-1", "ValueError: boom", T0)
    stored = Decision.model_validate_json(decision.to_json())
    assert (stored.status, stored.riskScore, stored.error) == ("error", None, "ValueError: boom")
    assert alerts_for(transaction(), stored) == []


def test_its_own_earlier_run_is_not_its_previous_transaction() -> None:
    txn = transaction(location="Tokyo")
    itself = LastSeen(txn.transactionId, "New York", None, epoch_ms(T0))
    result = evaluate(
        RULES,
        txn,
        place_of(txn, load_gazetteer()),
        _snapshot(txn, previous=itself),
        load_fx_rates(),
    )
    assert result.reasons == []


def test_epoch_ms_is_exact() -> None:
    at = T0.replace(microsecond=123000)
    assert epoch_ms(at) % 1000 == 123
    assert from_epoch_ms(epoch_ms(at)) == at


@dataclass
class _Message:
    """Only what decode reads of a Kafka message."""

    payload: bytes | None

    def value(self) -> bytes | None:
        return self.payload


@pytest.fixture
def handler() -> TransactionHandler:
    return TransactionHandler(
        rules=lambda: RULES,
        state=None,  # type: ignore[arg-type]  # decode touches no state
        lists=None,  # type: ignore[arg-type]
        redis_client=None,  # type: ignore[arg-type]
        producer=None,  # type: ignore[arg-type]
        alerts_topic="alerts",
        fx_rates=load_fx_rates(),
        gazetteer=load_gazetteer,
        decision_ttl_seconds=60,
        stats_ttl_seconds=60,
        ack_timeout_seconds=1,
        max_event_age=timedelta(days=7),
    )


def test_decode_accepts_what_the_transaction_service_publishes(handler) -> None:
    txn = transaction(amount="0.1", currency="EUR")
    decoded = handler.decode(_Message(txn.to_json().encode()))
    assert decoded == txn


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (None, "empty message"),
        (b"", "empty message"),
        (b"\xff\xfe{}", "not valid UTF-8"),
        (b"{not json", "not valid JSON"),
        (b'{"userId": "u1"}', "not a valid transaction: transactionId is required"),
        (b"[]", "not a valid transaction"),
    ],
)
def test_decode_refuses_with_a_reason(handler, payload: bytes | None, reason: str) -> None:
    with pytest.raises(InvalidMessage, match=reason):
        handler.decode(_Message(payload))


def test_decode_refuses_a_currency_without_a_rate_only_when_no_usd_value_is_stamped(
    handler,
) -> None:
    raw = json.loads(transaction().to_json())
    raw["currency"] = "XAU"  # valid ISO 4217, but no exchange rate configured
    stamped = handler.decode(_Message(json.dumps(raw).encode()))
    assert stamped.amountUsd == Decimal(raw["amountUsd"])  # fixed at acceptance, used as is
    for name in ("amountUsd", "fxRate", "fxRateDate"):
        del raw[name]  # as written before acceptance stamped it
    with pytest.raises(InvalidMessage, match="no exchange rate for XAU"):
        handler.decode(_Message(json.dumps(raw).encode()))


@pytest.mark.parametrize(
    ("timestamp", "reason"),
    [
        ("0001-01-01T00:00:00Z", "before 1970"),
        ("1900-06-01T00:00:00Z", "before 1970"),
        ("2026-11-01T00:00:00Z", "seconds in the past"),  # received T0, 2026-11-28: 27 days
        ("2026-11-28T10:05:01Z", "5 minutes in the future"),
    ],
)
def test_decode_refuses_an_event_time_out_of_bounds(handler, timestamp: str, reason: str) -> None:
    raw = json.loads(transaction().to_json())
    raw["timestamp"] = timestamp
    with pytest.raises(InvalidMessage, match=reason):
        handler.decode(_Message(json.dumps(raw).encode()))
