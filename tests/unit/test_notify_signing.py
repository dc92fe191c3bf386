"""Webhook signatures: the documented scheme, tampering, replay, a changed alert id and
malformed headers."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from alert_service.notify import signature_header, verify_signature

SECRET = "whsec_test"
ALERT_ID = "0b0c6f6e-2d4f-5b8e-9a57-7d1f3c2b1a10"
OTHER_ID = "0b0c6f6e-2d4f-5b8e-9a57-7d1f3c2b1a11"
BODY = f'{{"alertId":"{ALERT_ID}","alertType":"large_transaction_detected"}}'
T = 1_800_000_000


def test_header_is_hmac_sha256_of_timestamp_alert_id_and_body() -> None:
    content = f"{T}.{ALERT_ID}.{BODY}".encode()
    expected = hmac.new(SECRET.encode(), content, hashlib.sha256).hexdigest()
    assert signature_header(SECRET, ALERT_ID, BODY, T) == f"t={T},v2={expected}"


def test_a_fresh_signature_verifies_for_str_and_bytes() -> None:
    header = signature_header(SECRET, ALERT_ID, BODY.encode())
    assert verify_signature(SECRET, header, ALERT_ID, BODY)
    assert verify_signature(SECRET.encode(), header, ALERT_ID, BODY.encode())


@pytest.mark.parametrize(
    ("secret", "alert_id", "body"),
    [
        (SECRET, ALERT_ID, BODY.replace("large", "small")),  # tampered body
        (SECRET, ALERT_ID, BODY + " "),  # even whitespace counts
        ("another-secret", ALERT_ID, BODY),  # wrong secret
        (SECRET, OTHER_ID, BODY),  # re-sent under another X-Alert-Id
        (SECRET, None, BODY),  # no X-Alert-Id
        (SECRET, "", BODY),
    ],
)
def test_a_changed_body_alert_id_or_secret_fails(
    secret: str, alert_id: str | None, body: str
) -> None:
    header = signature_header(SECRET, ALERT_ID, BODY, T)
    assert not verify_signature(secret, header, alert_id, body, now=T)


def test_timestamp_tolerance_refuses_replays() -> None:
    header = signature_header(SECRET, ALERT_ID, BODY, T)
    assert verify_signature(SECRET, header, ALERT_ID, BODY, now=T + 300)
    assert verify_signature(SECRET, header, ALERT_ID, BODY, now=T - 300)
    assert not verify_signature(SECRET, header, ALERT_ID, BODY, now=T + 301)
    assert not verify_signature(SECRET, header, ALERT_ID, BODY, tolerance=10, now=T + 11)
    assert verify_signature(SECRET, header, ALERT_ID, BODY, tolerance=None, now=T + 10**6)


def test_the_timestamp_is_signed_too() -> None:
    header = signature_header(SECRET, ALERT_ID, BODY, T)
    moved = header.replace(f"t={T}", f"t={T + 60}")
    assert not verify_signature(SECRET, moved, ALERT_ID, BODY, now=T + 60)


def test_any_matching_v2_is_enough_for_a_secret_rotation() -> None:
    old = signature_header("old-secret", ALERT_ID, BODY, T).split("v2=")[1]
    new = signature_header(SECRET, ALERT_ID, BODY, T).split("v2=")[1]
    assert verify_signature(SECRET, f"t={T},v2={old},v2={new}", ALERT_ID, BODY, now=T)
    assert not verify_signature(SECRET, f"t={T},v2={old}", ALERT_ID, BODY, now=T)


def test_a_v1_signature_of_the_body_alone_is_not_accepted() -> None:
    v1 = hmac.new(SECRET.encode(), f"{T}.{BODY}".encode(), hashlib.sha256).hexdigest()
    assert not verify_signature(SECRET, f"t={T},v1={v1}", ALERT_ID, BODY, now=T)


@pytest.mark.parametrize(
    "header",
    [None, "", "garbage", f"t={T}", "v2=abc", f"t=soon,v2={'0' * 64}", f"t={T},v2="],
)
def test_malformed_headers_fail_without_raising(header: str | None) -> None:
    assert not verify_signature(SECRET, header, ALERT_ID, BODY, now=T)
