"""An alert's id is a UUID and its free-form fields are bounded: what the alert-service
stores, streams and shows cannot be made arbitrarily large or shaped by a forged message."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from fraud_common.schemas import MAX_ALERT_DETAILS_BYTES, MAX_ALERT_MESSAGE, Alert
from tests.support.factories import make_alert


def _as_sent(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = make_alert("u1").model_dump(mode="json", exclude_none=True)
    body.update(changes)
    return body


def test_an_alert_as_the_detector_sends_it_is_valid() -> None:
    alert = make_alert("u1", details={"threshold": 10000, "note": "x" * 1000})
    assert Alert.model_validate_json(alert.to_json()).to_json() == alert.to_json()


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"alertId": "a-1"}, "alertId"),
        ({"alertId": "../../etc/passwd"}, "alertId"),
        ({"alertId": "0B0C6F6E-2D4F-5B8E-9A57-7D1F3C2B1A10"}, "alertId"),  # canonical: lower
        ({"alertId": "0b0c6f6e-2d4f-5b8e-9a57-7d1f3c2b1a10\n"}, "alertId"),
        ({"alertType": "<script>"}, "alertType"),
        ({"alertType": "x" * 129}, "alertType"),
        ({"alertType": ""}, "alertType"),
        ({"severity": "HIGH<b>"}, "severity"),
        ({"message": "m" * (MAX_ALERT_MESSAGE + 1)}, "message"),
        ({"details": {"blob": "d" * MAX_ALERT_DETAILS_BYTES}}, "details"),
        ({"details": {str(i): i for i in range(2000)}}, "details"),
    ],
)
def test_a_forged_alert_is_refused(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        Alert.model_validate(_as_sent(**changes))
    assert [error["loc"][0] for error in info.value.errors()] == [field]


def test_the_bounds_are_inclusive() -> None:
    Alert.model_validate(_as_sent(message="m" * MAX_ALERT_MESSAGE, alertType="a" * 128))
    # {"blob":"..."} is 11 bytes of JSON around the value
    Alert.model_validate(_as_sent(details={"blob": "d" * (MAX_ALERT_DETAILS_BYTES - 11)}))
    with pytest.raises(ValidationError):
        Alert.model_validate(_as_sent(details={"blob": "d" * (MAX_ALERT_DETAILS_BYTES - 10)}))
