"""Email channel: one message per alert, plain text with an HTML alternative, over SMTP."""

from __future__ import annotations

import html
import logging
import re
import smtplib
import ssl
from datetime import UTC, datetime
from decimal import Decimal
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from alert_service.notify.channel import DeliveryError
from fraud_common.jsonutil import dumps
from fraud_common.schemas import Alert

log = logging.getLogger(__name__)

CHANNEL = "email"

TITLES = {
    "large_transaction_detected": "Large transaction",
    "multiple_rapid_transactions_detected": "Rapid transactions",
    "unusual_location_change_detected": "Unusual location change",
}

_SPACE = re.compile(r"\s+")


def title(alert_type: str) -> str:
    """Readable name of an alert type (``large_transaction_detected`` -> Large transaction)."""
    known = TITLES.get(alert_type)
    if known:
        return known
    return alert_type.removesuffix("_detected").replace("_", " ").strip().capitalize() or "Alert"


def format_amount(amount: Decimal) -> str:
    """``25,000.00``: grouped, at least two decimals, never rounded."""
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -2:
        return f"{amount:,f}"
    return f"{amount:,.2f}"


def _one_line(text: str) -> str:
    """Header-safe: a location with a line break must not inject a header."""
    return _SPACE.sub(" ", text).strip()


def _time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Decimal):
        return format(value, "f")
    return dumps(value)


def subject(alert: Alert) -> str:
    txn = alert.transaction
    return _one_line(
        f"[fraud alert] {title(alert.alertType)}: user {txn.userId}, "
        f"{format_amount(txn.amount)} {txn.currency} in {txn.location}"
    )


def _rows(alert: Alert) -> list[tuple[str, str]]:
    txn = alert.transaction
    rows = [
        ("Alert", title(alert.alertType)),
        ("Severity", alert.severity),
        ("User", txn.userId),
        ("Amount", f"{format_amount(txn.amount)} {txn.currency}"),
        ("Place", _one_line(txn.location)),
        ("Transaction time", _time(txn.timestamp)),
        ("Alert time", _time(alert.timestamp)),
    ]
    if alert.message:
        rows.append(("Message", alert.message))
    rows += [(f"Detail: {name}", _value(value)) for name, value in alert.details.items()]
    rows += [
        ("Alert type", alert.alertType),
        ("Alert id", alert.alertId),
        ("Transaction id", txn.transactionId),
    ]
    return rows


def text_body(alert: Alert) -> str:
    rows = _rows(alert)
    width = max(len(name) for name, _ in rows) + 2
    lines = [f"Fraud alert: {title(alert.alertType)}", ""]
    lines += [f"{name + ':':<{width}}{value}" for name, value in rows]
    return "\n".join(lines) + "\n"


def html_body(alert: Alert) -> str:
    cells = "\n".join(
        f'<tr><th style="text-align:left;padding:4px 12px 4px 0;color:#555;'
        f'font-weight:normal">{html.escape(name)}</th>'
        f'<td style="padding:4px 0">{html.escape(value)}</td></tr>'
        for name, value in _rows(alert)
    )
    heading = html.escape(f"Fraud alert: {title(alert.alertType)}")
    return (
        '<!doctype html>\n<html><body style="font-family:sans-serif;color:#222">\n'
        f'<h2 style="color:#b00020;margin:0 0 12px">{heading}</h2>\n'
        f'<table style="border-collapse:collapse;font-size:14px">\n{cells}\n</table>\n'
        "</body></html>\n"
    )


def compose(alert: Alert, sender: str, recipients: list[str]) -> EmailMessage:
    """The message for one alert; its Message-ID derives from the alert id, so a mail
    client can recognise a redelivered duplicate."""
    message = EmailMessage()
    message["Subject"] = subject(alert)
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = format_datetime(datetime.now(UTC))
    domain = sender.rpartition("@")[2] or "fraud-alerts.local"
    message["Message-ID"] = f"<{alert.alertId}@{_one_line(domain)}>"
    message["X-Alert-Id"] = alert.alertId
    message["X-Alert-Type"] = alert.alertType
    message.set_content(text_body(alert))
    message.add_alternative(html_body(alert), subtype="html")
    return message


class EmailSender:
    """One SMTP session per message (STARTTLS and login when configured)."""

    channel = CHANNEL

    def __init__(
        self,
        host: str,
        port: int,
        *,
        sender: str,
        recipients: list[str],
        timeout: float,
        starttls: bool = False,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self._host = host
        self._port = port
        self._sender = sender
        self._recipients = list(recipients)
        self._timeout = timeout
        self._starttls = starttls
        self._username = username
        self._password = password
        self.target = f"smtp://{host}:{port}"

    def deliver(self, alert: Alert, body: str) -> None:
        message = compose(alert, self._sender, self._recipients)
        try:
            with smtplib.SMTP(self._host, self._port, timeout=self._timeout) as smtp:
                if self._starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self._username:
                    smtp.login(self._username, self._password or "")
                refused = smtp.send_message(message)
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(f"smtp {exc.smtp_code}: {_reply(exc.smtp_error)}") from exc
        except smtplib.SMTPRecipientsRefused as exc:
            raise DeliveryError(f"smtp: all recipients refused ({len(exc.recipients)})") from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"smtp: {type(exc).__name__}: {exc}") from exc
        if refused:  # some took it: a retry would mail them twice
            log.warning(
                "some recipients refused the alert email",
                extra={"alertId": alert.alertId, "refused": sorted(refused)},
            )

    def close(self) -> None:
        """Nothing held between messages."""


def _reply(raw: bytes | str) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return _one_line(text)[:200]
