"""The OpenAPI 3.1 document of the service, served at ``GET /api/v1/openapi.json``.

Written by hand next to the code it describes and kept true by tests that validate real
responses against it (and by schemathesis fuzzing the running service from it).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response

from fraud_common.api_keys import HEADER as API_KEY_HEADER
from fraud_common.http_errors import json_response
from fraud_common.jsonutil import dumps
from fraud_common.metrics import OPENAPI_PATH_ITEM as METRICS_PATH_ITEM
from fraud_common.money import load_fx_rates
from fraud_common.schemas import USER_ID_PATTERN
from transaction_service.context import current
from transaction_service.idempotency import HEADER as IDEMPOTENCY_HEADER
from transaction_service.idempotency import MAX_KEY_LENGTH, REPLAYED_HEADER
from transaction_service.inline_decision import APPLIED_HEADER as PREFERENCE_APPLIED_HEADER
from transaction_service.inline_decision import HEADER as PREFER_HEADER
from transaction_service.inline_decision import MAX_WAIT_SECONDS
from transaction_service.settings import TransactionServiceSettings

bp = Blueprint("openapi", __name__, url_prefix="/api/v1")

_NUMERIC_STRING = r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$"
_MAX_AMOUNT = 10**12


@bp.get("/openapi.json")
def openapi_json() -> Response:
    return json_response(current().openapi_document)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str, headers: dict[str, Any] | None = None) -> Any:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }
    if headers:
        response["headers"] = headers
    return response


def _error_ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/responses/{name}"}


def _schemas(settings: TransactionServiceSettings) -> dict[str, Any]:
    currencies = sorted(load_fx_rates(settings.fx_rates_path).usd_per_unit)
    user_id = {"type": "string", "pattern": USER_ID_PATTERN, "minLength": 1, "maxLength": 64}
    location = {"type": "string", "minLength": 1, "maxLength": 128}
    latitude = {"type": "number", "minimum": -90, "maximum": 90}
    longitude = {"type": "number", "minimum": -180, "maximum": 180}
    time_text = {"type": "string", "format": "date-time"}
    stored: dict[str, Any] = {
        "transactionId": {"type": "string", "minLength": 1, "maxLength": 64},
        "userId": user_id,
        "amount": {
            "type": "string",
            "pattern": r"^\d+(\.\d+)?$",
            "description": "exact decimal, as a string",
        },
        "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
        "location": location,
        "latitude": latitude,
        "longitude": longitude,
        "timestamp": {**time_text, "description": "event time, UTC"},
        "receivedAt": {**time_text, "description": "when the service received it, UTC"},
        "amountUsd": {
            "type": "string",
            "pattern": r"^\d+(\.\d+)?$",
            "description": "the amount in USD, fixed at acceptance (amount x fxRate)",
        },
        "fxRate": {
            "type": "string",
            "pattern": r"^\d+(\.\d+)?$",
            "description": "USD per unit of the currency, as applied at acceptance",
        },
        "fxRateDate": {"type": "string", "description": "date of the rate table applied"},
    }
    stored_required = [
        "transactionId",
        "userId",
        "amount",
        "currency",
        "location",
        "timestamp",
        "receivedAt",
    ]
    decision_alert = {
        "type": "object",
        "required": ["alertId", "alertType", "severity"],
        "properties": {
            "alertId": {"type": "string"},
            "alertType": {"type": "string"},
            "severity": {"type": "string"},
            "message": {"type": "string"},
        },
    }
    reason = {
        "type": "object",
        "required": ["ruleId", "alertType", "severity", "score"],
        "properties": {
            "ruleId": {"type": "string"},
            "alertType": {"type": "string"},
            "severity": {"type": "string"},
            "score": {"type": "integer", "minimum": 0, "maximum": 100},
            "message": {"type": "string"},
        },
    }
    inline_decision = {
        "description": f"with {PREFER_HEADER}: wait=N only: the detector's decision, or "
        "pending when it was not made within N seconds of the broker's acknowledgement "
        "(the transaction is accepted either way; GET it later)",
        "oneOf": [
            {
                "type": "object",
                "required": ["status"],
                "additionalProperties": False,
                "properties": {"status": {"const": "pending"}},
            },
            {
                "type": "object",
                "required": ["status", "riskScore", "reasons", "rulesVersion"],
                "additionalProperties": False,
                "properties": {
                    "status": {"enum": ["approve", "review", "decline", "error"]},
                    "riskScore": {"type": ["integer", "null"], "minimum": 0, "maximum": 100},
                    "reasons": {"type": "array", "items": reason},
                    "rulesVersion": {"type": ["string", "null"]},
                    "error": {
                        "type": "string",
                        "description": "status error only: why it could not be evaluated",
                    },
                },
            },
        ],
    }
    return {
        "InlineDecision": inline_decision,
        "TransactionRequest": {
            "type": "object",
            "description": "A transaction to submit. Unknown fields are an error.",
            "required": ["userId", "amount", "currency", "location"],
            "additionalProperties": False,
            "dependentRequired": {"latitude": ["longitude"], "longitude": ["latitude"]},
            "properties": {
                "userId": {**user_id, "description": "1-64 chars of A-Z a-z 0-9 _ . : @ -"},
                "amount": {
                    "description": "> 0 and <= 1e12, finite, at most 18 decimal places; "
                    "kept exactly",
                    "anyOf": [
                        {"type": "number", "exclusiveMinimum": 0, "maximum": _MAX_AMOUNT},
                        {"type": "string", "pattern": _NUMERIC_STRING, "maxLength": 64},
                    ],
                },
                "currency": {
                    "type": "string",
                    "pattern": "^[A-Za-z]{3}$",
                    "description": "ISO 4217 code, case-insensitive; supported: "
                    + ", ".join(currencies),
                },
                "location": {**location, "description": "place name, e.g. New York"},
                "latitude": latitude,
                "longitude": longitude,
                "timestamp": {
                    "description": "event time: ISO 8601 with offset, or epoch seconds; "
                    "at most 5 minutes in the future, not before 1970 and at most "
                    "MAX_EVENT_AGE_SECONDS (default 7 days) in the past; default: time received",
                    "anyOf": [time_text, {"type": "number"}],
                },
            },
        },
        "Transaction": {
            "type": "object",
            "required": stored_required,
            "additionalProperties": False,
            "properties": stored,
        },
        "TransactionView": {
            "type": "object",
            "description": "A stored transaction with the detector's decision, if any.",
            "required": [*stored_required, "status", "riskScore", "alerts", "evaluatedAt"],
            "additionalProperties": False,
            "properties": {
                **stored,
                "status": {
                    "enum": ["pending", "approve", "review", "decline", "error"],
                    "description": "pending until evaluated, then the decision; error when "
                    "the transaction could not be evaluated (see error)",
                },
                "riskScore": {"type": ["integer", "null"], "minimum": 0, "maximum": 100},
                "reasons": {"type": "array", "items": reason},
                "rulesVersion": {"type": ["string", "null"]},
                "ruleErrors": {
                    "type": "array",
                    "description": "rules that raised instead of answering; left out of the score",
                    "items": {
                        "type": "object",
                        "required": ["ruleId", "error"],
                        "properties": {"ruleId": {"type": "string"}, "error": {"type": "string"}},
                    },
                },
                "shadowHits": {
                    "type": "array",
                    "description": "the rules in mode: shadow that fired (never scored nor "
                    "alerted); left out when none did",
                    "items": reason,
                },
                "error": {
                    "type": "string",
                    "description": "why the transaction could not be evaluated",
                },
                "alerts": {"type": "array", "items": decision_alert},
                "evaluatedAt": {"anyOf": [time_text, {"type": "null"}]},
            },
        },
        "Created": {
            "type": "object",
            "required": ["status", "transactionId", "transaction"],
            "additionalProperties": False,
            "properties": {
                "status": {"const": "success"},
                "transactionId": {"type": "string"},
                "transaction": _ref("Transaction"),
                "decision": _ref("InlineDecision"),
            },
        },
        "BatchRequest": {
            "type": "object",
            "required": ["transactions"],
            "additionalProperties": False,
            "properties": {
                "transactions": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": settings.max_batch_items,
                    "items": _ref("TransactionRequest"),
                }
            },
        },
        "BatchCreated": {
            "type": "object",
            "required": ["status", "transactionIds", "count"],
            "additionalProperties": False,
            "properties": {
                "status": {"const": "success"},
                "transactionIds": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "in the order of the request",
                },
                "count": {"type": "integer", "minimum": 1},
                "decisions": {
                    "type": "array",
                    "items": _ref("InlineDecision"),
                    "description": f"with {PREFER_HEADER}: wait=N only: one per transaction, "
                    "in the order of transactionIds",
                },
            },
        },
        "Health": {
            "type": "object",
            "required": ["status", "redis", "kafka"],
            "properties": {
                "status": {"enum": ["healthy", "unhealthy"]},
                "redis": {"type": "string", "description": "connected, disconnected or error"},
                "kafka": {"type": "string", "description": "connected or disconnected"},
            },
        },
        "Error": {
            "type": "object",
            "required": ["error"],
            "additionalProperties": False,
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message", "details"],
                    "additionalProperties": False,
                    "properties": {
                        "code": {"type": "string"},
                        "message": {"type": "string"},
                        "details": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["field", "message"],
                                "additionalProperties": False,
                                "properties": {
                                    "field": {"type": "string"},
                                    "message": {"type": "string"},
                                },
                            },
                        },
                    },
                }
            },
        },
    }


_RETRY_AFTER = {
    "Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "string"}}
}


def _responses() -> dict[str, Any]:
    error = _ref("Error")
    return {
        "BadRequest": _json(error, "validation_error (details name each field) or invalid_json"),
        "Unauthorized": _json(error, "unauthorized: missing or wrong X-API-Key"),
        "NotFound": _json(error, "not_found"),
        "InFlight": _json(
            error,
            "idempotency_key_in_flight: a request with this key is still running",
            _RETRY_AFTER,
        ),
        "TooLarge": _json(error, "payload_too_large"),
        "UnsupportedMediaType": _json(error, "unsupported_media_type: not application/json"),
        "KeyMismatch": _json(
            error, "idempotency_key_mismatch: the key was used with a different request"
        ),
        "Unavailable": _json(
            error,
            "service_unavailable: Redis or the broker is away; nothing was accepted",
            _RETRY_AFTER,
        ),
    }


def build_document(settings: TransactionServiceSettings) -> dict[str, Any]:
    idempotency_key = {
        "name": IDEMPOTENCY_HEADER,
        "in": "header",
        "required": False,
        "description": "Repeat with the same key and body: the first response, nothing "
        "published twice (24 h). Same key, other body: 422. Still in flight: 409.",
        "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH},
    }
    replayed = {
        REPLAYED_HEADER: {
            "description": "true when this is the stored response to an Idempotency-Key",
            "schema": {"type": "string"},
        }
    }
    prefer = {
        "name": PREFER_HEADER,
        "in": "header",
        "required": False,
        "description": "RFC 7240. wait=N (seconds, capped at "
        f"{MAX_WAIT_SECONDS}): answer once the detector has decided, at most N seconds "
        "after the broker's acknowledgement, with the decision in the 201 (decision; "
        "decisions for a batch, in order), or pending when it is not ready by then. "
        "Other preferences, and a wait that is not whole seconds, are ignored. On an "
        "Idempotency-Key replay the stored response is returned with the decision as it "
        "is now, waited for from the replay on.",
        "schema": {"type": "string"},
        "examples": {"inline": {"value": "wait=2"}},
    }
    applied = {
        PREFERENCE_APPLIED_HEADER: {
            "description": "wait=N when the wait was honoured (N as capped); absent otherwise",
            "schema": {"type": "string", "pattern": r"^wait=\d+$"},
        }
    }
    security: list[dict[str, list[str]]] = [{"apiKey": []}, {}]
    submit_errors = {
        "400": _error_ref("BadRequest"),
        "401": _error_ref("Unauthorized"),
        "409": _error_ref("InFlight"),
        "413": _error_ref("TooLarge"),
        "415": _error_ref("UnsupportedMediaType"),
        "422": _error_ref("KeyMismatch"),
        "503": _error_ref("Unavailable"),
    }
    max_body = settings.max_body_bytes
    max_batch = settings.max_batch_bytes
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "transaction-service",
            "version": "1.0.0",
            "description": "Accepts financial transactions for fraud detection. A 201 means "
            "the transaction is durably on the transactions topic.",
        },
        "paths": {
            "/api/v1/transactions": {
                "post": {
                    "operationId": "createTransaction",
                    "summary": f"Submit one transaction (body at most {max_body} bytes)",
                    "security": security,
                    "parameters": [idempotency_key, prefer],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("TransactionRequest")}},
                    },
                    "responses": {
                        "201": _json(
                            _ref("Created"),
                            "accepted: acknowledged by the broker",
                            {
                                "Location": {
                                    "description": "/api/v1/transactions/{transactionId}",
                                    "required": True,
                                    "schema": {"type": "string"},
                                },
                                **replayed,
                                **applied,
                            },
                        ),
                        **submit_errors,
                    },
                }
            },
            "/api/v1/transactions/batch": {
                "post": {
                    "operationId": "createTransactionBatch",
                    "summary": f"Submit 1-{settings.max_batch_items} transactions, validated "
                    f"all-or-nothing (body at most {max_batch} bytes)",
                    "security": security,
                    "parameters": [idempotency_key, prefer],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("BatchRequest")}},
                    },
                    "responses": {
                        "201": _json(
                            _ref("BatchCreated"),
                            "all acknowledged by the broker",
                            {**replayed, **applied},
                        ),
                        **submit_errors,
                    },
                }
            },
            "/api/v1/transactions/{transactionId}": {
                "get": {
                    "operationId": "getTransaction",
                    "summary": "A stored transaction with its status, risk score and alerts",
                    "security": security,
                    "parameters": [
                        {
                            "name": "transactionId",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {
                        "200": _json(_ref("TransactionView"), "the transaction"),
                        "401": _error_ref("Unauthorized"),
                        "404": _error_ref("NotFound"),
                        "503": _error_ref("Unavailable"),
                    },
                }
            },
            "/metrics": METRICS_PATH_ITEM,
            "/api/v1/health": {
                "get": {
                    "operationId": "health",
                    "summary": "Redis and Kafka reachable",
                    "responses": {
                        "200": _json(_ref("Health"), "healthy"),
                        "503": _json(_ref("Health"), "unhealthy: names what is down"),
                    },
                }
            },
            "/api/v1/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1 document")},
                }
            },
        },
        "components": {
            "schemas": _schemas(settings),
            "responses": _responses(),
            "securitySchemes": {
                "apiKey": {
                    "type": "apiKey",
                    "in": "header",
                    "name": API_KEY_HEADER,
                    "description": "Required on /api/v1/transactions* when the service runs "
                    "with API_KEYS; health and this document stay open.",
                }
            },
        },
    }


def document_text(settings: TransactionServiceSettings) -> str:
    return dumps(build_document(settings))
