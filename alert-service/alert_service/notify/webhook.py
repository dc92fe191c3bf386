"""Webhook channel: each alert POSTed as JSON to one URL, signed with that URL's secret
(see `signing`; the signature covers the alert id sent in ``X-Alert-Id``)."""

from __future__ import annotations

import hashlib
from urllib.parse import urlsplit, urlunsplit

import requests

from alert_service.notify.channel import DeliveryError
from alert_service.notify.signing import HEADER, signature_header
from fraud_common.schemas import Alert

USER_AGENT = "fraud-alert-service-webhooks/1"


def webhook_channel(url: str) -> str:
    """Stable channel id of a URL: the URL itself may hold a token, so it is hashed."""
    return f"webhook-{hashlib.sha256(url.encode()).hexdigest()[:12]}"


def redact_url(url: str) -> str:
    """``scheme://host:port/path``: no user info, no query, no fragment."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class WebhookSender:
    """Delivers to one URL over its own HTTP session (one channel thread uses it)."""

    def __init__(self, url: str, secret: str, *, timeout: float) -> None:
        self.url = url
        self.channel = webhook_channel(url)
        self.target = redact_url(url)
        self._secret = secret
        self._timeout = timeout
        self._session = requests.Session()

    def deliver(self, alert: Alert, body: str) -> None:
        payload = body.encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            HEADER: signature_header(self._secret, alert.alertId, payload),
            "X-Alert-Id": alert.alertId,
            "X-Alert-Type": alert.alertType,
        }
        try:
            response = self._session.post(
                self.url,
                data=payload,
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,
            )
        except requests.Timeout as exc:
            raise DeliveryError(f"timeout after {self._timeout:g}s") from exc
        except requests.RequestException as exc:
            # The exception text repeats the URL (and any token in it): name the kind only.
            raise DeliveryError(f"request failed: {type(exc).__name__}") from exc
        status = response.status_code
        response.close()
        if not 200 <= status < 300:
            raise DeliveryError(f"HTTP {status}")

    def close(self) -> None:
        self._session.close()
