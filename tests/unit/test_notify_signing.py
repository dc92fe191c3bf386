"""Webhook signatures: the documented scheme, tampering, replay and malformed headers."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from alert_service.notify import signature_header, verify_signature

SECRET = "whsec_test"
BODY = '{"alertId":"a1","alertType":"large_transaction_detected"}'
T = 1_800_000_000


def test_header_is_hmac_sha256_of_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET.encode(), f"{T}.{BODY}".encode(), hashlib.sha256).hexdigest()
    assert signature_header(SECRET, BODY, T) == f"t={T},v1={expected}"


def test_a_fresh_signature_verifies_for_str_and_bytes() -> None:
    header = signature_header(SECRET, BODY.encode())
    assert verify_signature(SECRET, header, BODY)
    assert verify_signature(SECRET.encode(), header, BODY.encode())


@pytest.mark.parametrize(
    ("secret", "body"),
    [
        (SECRET, BODY.replace("a1", "a2")),  # tampered body
        (SECRET, BODY + " "),  # even whitespace counts
        ("another-secret", BODY),  # wrong secret
    ],
)
def test_a_changed_body_or_secret_fails(secret: str, body: str) -> None:
    header = signature_header(SECRET, BODY, T)
    assert not verify_signature(secret, header, body, now=T)


def test_timestamp_tolerance_refuses_replays() -> None:
    header = signature_header(SECRET, BODY, T)
    assert verify_signature(SECRET, header, BODY, now=T + 300)
    assert verify_signature(SECRET, header, BODY, now=T - 300)
    assert not verify_signature(SECRET, header, BODY, now=T + 301)
    assert not verify_signature(SECRET, header, BODY, tolerance=10, now=T + 11)
    assert verify_signature(SECRET, header, BODY, tolerance=None, now=T + 10**6)


def test_the_timestamp_is_signed_too() -> None:
    header = signature_header(SECRET, BODY, T)
    moved = header.replace(f"t={T}", f"t={T + 60}")
    assert not verify_signature(SECRET, moved, BODY, now=T + 60)


def test_any_matching_v1_is_enough_for_a_secret_rotation() -> None:
    old = signature_header("old-secret", BODY, T).split("v1=")[1]
    new = signature_header(SECRET, BODY, T).split("v1=")[1]
    assert verify_signature(SECRET, f"t={T},v1={old},v1={new}", BODY, now=T)
    assert not verify_signature(SECRET, f"t={T},v1={old}", BODY, now=T)


@pytest.mark.parametrize(
    "header",
    [None, "", "garbage", f"t={T}", "v1=abc", f"t=soon,v1={'0' * 64}", f"t={T},v1="],
)
def test_malformed_headers_fail_without_raising(header: str | None) -> None:
    assert not verify_signature(SECRET, header, BODY, now=T)
