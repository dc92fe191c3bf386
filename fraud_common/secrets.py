"""Refusing placeholder and short secrets outside development.

`.env.example` ships ``change-me-*`` values so that ``docker compose up`` works on a
laptop; a deployment that forgets to replace them must not start. `ServiceSettings`
runs `refuse_weak_secrets` after validation: unless ``APP_ENV=development``, every
secret of the settings object (each `SecretStr` field, each key of a key list, and the
password inside ``REDIS_URL``) must be at least `MIN_SECRET_BYTES` bytes long and must
not look like a placeholder. The check is generic over the fields, so a service that
adds a secret field (``ADMIN_API_KEYS``, ``WEBHOOK_SECRETS``, ``SMTP_PASSWORD``...) is
covered without saying so.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, SecretStr

MIN_SECRET_BYTES = 32
DEVELOPMENT = "development"
_PLACEHOLDER = re.compile(r"change[-_ ]?me|replace[-_ ]?me|placeholder", re.IGNORECASE)


def weakness(value: str) -> str | None:
    """Why ``value`` is not a usable secret (None when it is)."""
    if _PLACEHOLDER.search(value):
        return "is a placeholder (change-me...)"
    if len(value.encode()) < MIN_SECRET_BYTES:
        return f"is shorter than {MIN_SECRET_BYTES} bytes"
    return None


def url_password(url: str) -> str | None:
    """The password inside ``redis://user:password@host``, if there is one."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return None
    return unquote(password) if password else None


def _secrets_of(name: str, value: Any) -> Iterator[tuple[str, str]]:
    if isinstance(value, SecretStr):
        text = value.get_secret_value()
        if name.endswith("_url"):  # a URL is secret for its password only
            password = url_password(text)
            if password is not None:
                yield f"{name.upper()} (its password)", password
        elif text:
            yield name.upper(), text
    elif isinstance(value, list | tuple):
        for position, item in enumerate(value, start=1):
            for label, secret in _secrets_of(name, item):
                yield f"{label} (entry {position})", secret
    elif isinstance(value, dict):
        for key, item in value.items():
            for label, secret in _secrets_of(name, item):
                yield f"{label} ({key})", secret


def weak_secrets(settings: BaseModel) -> list[str]:
    """One line per weak secret of ``settings``, naming the variable, never the value."""
    problems = []
    for name in type(settings).model_fields:
        for label, secret in _secrets_of(name, getattr(settings, name)):
            reason = weakness(secret)
            if reason is not None:
                problems.append(f"{label} {reason}")
    return problems


def refuse_weak_secrets(settings: BaseModel, app_env: str) -> None:
    """Raise ValueError listing the weak secrets, unless ``app_env`` is development."""
    if app_env == DEVELOPMENT:
        return
    problems = weak_secrets(settings)
    if problems:
        raise ValueError(
            "refusing to start with weak secrets (set real ones, e.g. `openssl rand -hex 32`, "
            "or APP_ENV=development on a laptop): " + "; ".join(problems)
        )
