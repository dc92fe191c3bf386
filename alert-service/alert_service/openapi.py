"""``GET /api/v1/openapi.json``: the service's OpenAPI 3.1 document (``openapi.json``).

The document is kept true by tests that validate real responses against it.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from flask import Blueprint, Response

from fraud_common.http_errors import json_response

blueprint = Blueprint("openapi", __name__)


@cache
def document() -> dict[str, Any]:
    text = resources.files("alert_service").joinpath("openapi.json").read_text("utf-8")
    doc: dict[str, Any] = json.loads(text)
    return doc


@blueprint.get("/api/v1/openapi.json")
def openapi() -> Response:
    return json_response(document())
