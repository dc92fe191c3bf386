"""The verification snippets of docs/webhooks.md work against the service's signatures."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from alert_service.notify import signature_header, verify_signature
from tests.support.notify_support import WebhookReceiver

DOC = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"
SECRET = "whsec_docs"
ALERT_ID = "0b0c6f6e-2d4f-5b8e-9a57-7d1f3c2b1a10"
BODY = b'{"alertId":"0b0c6f6e-2d4f-5b8e-9a57-7d1f3c2b1a10","transaction":{"userId":"u123"}}'


def _blocks(language: str, doc: Path = DOC) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", doc.read_text(), flags=re.DOTALL)


def test_readme_shows_the_same_verification_snippet() -> None:
    readme = DOC.parents[1] / "README.md"
    assert _blocks("python")[0] in _blocks("python", readme)


def test_python_snippet_verifies_and_refuses() -> None:
    namespace: dict[str, Any] = {}
    exec(_blocks("python")[0], namespace)  # noqa: S102 - our own documentation
    verify = namespace["verify_signature"]
    header = signature_header(SECRET, ALERT_ID, BODY)
    assert verify(SECRET, header, ALERT_ID, BODY)
    assert not verify(SECRET, header, ALERT_ID, BODY.replace(b"u123", b"u124"))
    assert not verify(SECRET, header, ALERT_ID.replace("a10", "a11"), BODY)
    assert not verify(SECRET, header, "", BODY)
    assert not verify("wrong", header, ALERT_ID, BODY)
    old = signature_header(SECRET, ALERT_ID, BODY, int(time.time()) - 301)
    assert not verify(SECRET, old, ALERT_ID, BODY)
    assert not verify(SECRET, "garbage", ALERT_ID, BODY)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
@pytest.mark.parametrize(
    ("body", "alert_id", "verdict"),
    [
        (BODY, ALERT_ID, "signature valid"),
        (b"{}", ALERT_ID, "INVALID"),
        (BODY, ALERT_ID.replace("a10", "a11"), "INVALID"),
    ],
)
def test_shell_snippet_verifies_and_refuses(
    tmp_path: Path, body: bytes, alert_id: str, verdict: str
) -> None:
    (tmp_path / "body.json").write_bytes(body)
    result = subprocess.run(
        ["bash", "-c", _blocks("sh")[0]],
        cwd=tmp_path,
        env={
            "PATH": "/usr/bin:/bin",
            "WEBHOOK_SECRET": SECRET,
            "header": signature_header(SECRET, ALERT_ID, BODY),
            "alert_id": alert_id,
        },
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    assert verdict in result.stdout


@pytest.mark.skipif(
    shutil.which("openssl") is None or shutil.which("curl") is None,
    reason="openssl or curl is not installed",
)
def test_shell_test_request_is_correctly_signed() -> None:
    script = _blocks("sh")[1]
    assert "http://localhost:8000/hooks/alerts" in script
    with WebhookReceiver() as receiver:
        url = receiver.url.split("?")[0]
        subprocess.run(
            ["bash", "-c", script.replace("http://localhost:8000/hooks/alerts", url)],
            env={"PATH": "/usr/bin:/bin", "WEBHOOK_SECRET": SECRET},
            capture_output=True,
            timeout=10,
            check=True,
        )
    (request,) = receiver.all()
    alert_id = request.headers["X-Alert-Id"]
    assert json.loads(request.body)["alertId"] == alert_id
    assert verify_signature(SECRET, request.headers["X-Signature"], alert_id, request.body)
