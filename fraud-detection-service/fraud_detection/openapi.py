"""The OpenAPI 3.1 document of the fraud-detection-service, served at
``GET /api/v1/openapi.json``.

The bodies' schemas are generated from the pydantic models the views validate and
answer with (`model_json_schema`), so the document and the code cannot drift apart;
only the paths are written here. Tests validate real responses against it and fuzz the
running service from it (tests/integration/test_lists_api.py).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, current_app
from pydantic import BaseModel, ConfigDict
from pydantic.json_schema import models_json_schema

from fraud_common.api_keys import HEADER as API_KEY_HEADER
from fraud_common.http_errors import json_response
from fraud_common.jsonutil import dumps
from fraud_common.metrics import OPENAPI_PATH_ITEM as METRICS_PATH_ITEM
from fraud_detection.lists import LIST_NAME_PATTERN, MAX_VALUE_LENGTH
from fraud_detection.lists_api import EntryRequest, EntryWritten, ListView
from fraud_detection.rules_api import Reloaded, RulesInvalidBody, RulesView

PATH = "/api/v1/openapi.json"
EXTENSION = "fraud_detection.openapi"
_REF = "#/components/schemas/{model}"


class FieldProblemBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    field: str
    message: str


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str
    message: str
    details: list[FieldProblemBody]


class ErrorBody(BaseModel):
    """Every error of every service: ``{"error": {"code", "message", "details"}}``."""

    model_config = ConfigDict(extra="forbid")
    error: ErrorDetail


MODELS: list[tuple[type[BaseModel], Any]] = [
    (EntryRequest, "validation"),
    (EntryWritten, "serialization"),
    (ListView, "serialization"),
    (ErrorBody, "serialization"),
    (RulesView, "serialization"),
    (Reloaded, "serialization"),
    (RulesInvalidBody, "serialization"),
]


def install(app: Flask) -> None:
    """Serve the document (built once, here) on ``app``."""
    app.extensions[EXTENSION] = dumps(build_document())
    blueprint = Blueprint("openapi", __name__)

    @blueprint.get(PATH)
    def openapi_json() -> Response:
        return json_response(current_app.extensions[EXTENSION])

    app.register_blueprint(blueprint)


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": _REF.format(model=model.__name__)}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/responses/{name}"}


def _schemas() -> dict[str, Any]:
    _, top = models_json_schema(MODELS, ref_template=_REF)
    schemas: dict[str, Any] = top["$defs"]
    schemas["Health"] = {
        "type": "object",
        "required": ["status", "redis", "kafka"],
        "properties": {
            "status": {"enum": ["healthy", "unhealthy"]},
            "redis": {"type": "string", "description": "connected, disconnected or error"},
            "kafka": {"type": "string", "description": "connected or disconnected"},
            "consumer": {"type": "object", "description": "the consumer loop's state"},
        },
    }
    return schemas


def _responses() -> dict[str, Any]:
    error = _ref(ErrorBody)
    retry_after = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "string"}}}
    return {
        "BadRequest": _json(error, "validation_error (details name each field) or invalid_json"),
        "Unauthorized": _json(error, "unauthorized: missing or wrong X-API-Key"),
        "NotFound": _json(error, "not_found"),
        "TooLarge": _json(error, "payload_too_large"),
        "UnsupportedMediaType": _json(error, "unsupported_media_type: not application/json"),
        "Unavailable": {
            **_json(error, "service_unavailable: Redis is away; nothing was changed"),
            "headers": retry_after,
        },
    }


def _lists_paths() -> dict[str, Any]:
    name = {
        "name": "list",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": LIST_NAME_PATTERN},
    }
    value = {
        "name": "value",
        "in": "path",
        "required": True,
        "description": "the value, percent-encoded (any characters, '/' included)",
        "schema": {"type": "string", "minLength": 1, "maxLength": MAX_VALUE_LENGTH},
    }
    admin: list[dict[str, list[str]]] = [{"adminApiKey": []}, {}]
    common = {"400": _error("BadRequest"), "503": _error("Unavailable")}
    return {
        "/api/v1/lists/{list}": {
            "get": {
                "operationId": "getList",
                "summary": "The live entries of a list (an unknown list has none)",
                "parameters": [name],
                "responses": {"200": _json(_ref(ListView), "the list"), **common},
            }
        },
        "/api/v1/lists/{list}/entries/{value}": {
            "put": {
                "operationId": "putListEntry",
                "summary": "Put a value on a list (replaces its reason and expiry)",
                "security": admin,
                "parameters": [name, value],
                "requestBody": {
                    "required": False,
                    "content": {"application/json": {"schema": _ref(EntryRequest)}},
                },
                "responses": {
                    "201": _json(_ref(EntryWritten), "added"),
                    "200": _json(_ref(EntryWritten), "replaced (keeps addedAt)"),
                    "401": _error("Unauthorized"),
                    "413": _error("TooLarge"),
                    "415": _error("UnsupportedMediaType"),
                    **common,
                },
            },
            "delete": {
                "operationId": "deleteListEntry",
                "summary": "Take a value off a list",
                "security": admin,
                "parameters": [name, value],
                "responses": {
                    "204": {"description": "removed"},
                    "401": _error("Unauthorized"),
                    "404": _error("NotFound"),
                    **common,
                },
            },
        },
    }


def _rules_paths() -> dict[str, Any]:
    """`fraud_detection.rules_api`."""
    admin: list[dict[str, list[str]]] = [{"adminApiKey": []}, {}]
    return {
        "/api/v1/rules": {
            "get": {
                "operationId": "getRules",
                "summary": "The rules in force, their version and counters",
                "responses": {
                    "200": _json(_ref(RulesView), "the rules, their thresholds and counters"),
                    "503": _error("Unavailable"),
                },
            }
        },
        "/api/v1/rules/reload": {
            "post": {
                "operationId": "reloadRules",
                "summary": "Read the rules file again",
                "security": admin,
                "responses": {
                    "200": _json(_ref(Reloaded), "the version in force"),
                    "400": _json(
                        _ref(RulesInvalidBody),
                        "rules_invalid: every problem by file, line and field; the "
                        "previous rules stay in force",
                    ),
                    "401": _error("Unauthorized"),
                    "503": _error("Unavailable"),
                },
            }
        },
    }


def build_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "fraud-detection-service",
            "version": "1.0.0",
            "description": "Evaluates transactions; serves its health, its rules and "
            "the lists the list_match rules look values up in.",
        },
        "paths": {
            **_lists_paths(),
            **_rules_paths(),
            "/metrics": METRICS_PATH_ITEM,
            "/health": {
                "get": {
                    "operationId": "health",
                    "summary": "Redis, Kafka and the consumer loop",
                    "responses": {
                        "200": _json({"$ref": "#/components/schemas/Health"}, "healthy"),
                        "503": _json({"$ref": "#/components/schemas/Health"}, "unhealthy"),
                    },
                }
            },
            PATH: {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1 document")},
                }
            },
        },
        "components": {
            "schemas": _schemas(),
            "responses": _responses(),
            "securitySchemes": {
                "adminApiKey": {
                    "type": "apiKey",
                    "in": "header",
                    "name": API_KEY_HEADER,
                    "description": "Required on the mutating calls when the service runs "
                    "with ADMIN_API_KEYS; reads, health and this document stay open.",
                }
            },
        },
    }
