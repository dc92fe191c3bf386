"""The alert email: subject, readable text, escaped HTML, header safety."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from alert_service.notify.mail import compose, format_amount, subject, title
from fraud_common.schemas import Alert, Transaction

WHEN = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


def _alert(
    location: str = "Tokyo",
    amount: str = "25000",
    alert_type: str = "large_transaction_detected",
) -> Alert:
    txn = Transaction(
        transactionId="t-1",
        userId="u123",
        amount=Decimal(amount),
        currency="USD",
        location=location,
        timestamp=WHEN,
        receivedAt=WHEN,
    )
    return Alert(
        alertId="0b0c6f6e-2d4f-5b8e-9a57-7d1f3c2b1a10",
        alertType=alert_type,
        severity="high",
        transaction=txn,
        timestamp=WHEN,
        details={"threshold": 10000, "previous_location": "New York"},
    )


def test_subject_names_type_user_amount_and_place() -> None:
    expected = "[fraud alert] Large transaction: user u123, 25,000.00 USD in Tokyo"
    assert subject(_alert()) == expected


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        ("25000", "25,000.00"),
        ("12.5", "12.50"),
        ("0.001", "0.001"),
        ("1234567.891", "1,234,567.891"),
        ("1000000000000", "1,000,000,000,000.00"),
    ],
)
def test_amounts_are_grouped_and_never_rounded(amount: str, text: str) -> None:
    assert format_amount(Decimal(amount)) == text


@pytest.mark.parametrize(
    ("alert_type", "name"),
    [
        ("multiple_rapid_transactions_detected", "Rapid transactions"),
        ("unusual_location_change_detected", "Unusual location change"),
        ("velocity_spike_detected", "Velocity spike"),
    ],
)
def test_titles(alert_type: str, name: str) -> None:
    assert title(alert_type) == name


def test_message_has_text_and_html_alternatives() -> None:
    message = compose(_alert(), "alerts@fraud.example", ["a@example.com", "b@example.com"])
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    body = text.get_content()
    assert "Fraud alert: Large transaction" in body
    assert "2026-11-28 10:00:00 UTC" in body
    assert "Detail: previous_location" in body and "New York" in body
    assert message["To"] == "a@example.com, b@example.com"
    assert message["Message-ID"] == "<0b0c6f6e-2d4f-5b8e-9a57-7d1f3c2b1a10@fraud.example>"


def test_html_is_escaped_and_headers_stay_one_line() -> None:
    alert = _alert(location="<script>x</script>\r\nBcc: evil@example.com")
    message = compose(alert, "alerts@fraud.example", ["a@example.com"])
    assert "\n" not in message["Subject"] and "\r" not in message["Subject"]
    assert message["Bcc"] is None
    html = message.get_body(preferencelist=("html",))
    assert html is not None
    content = html.get_content()
    assert "<script>" not in content
    assert "&lt;script&gt;" in content
