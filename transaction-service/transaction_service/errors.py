"""Every error a client sees, as JSON: ``{"error": {"code", "message", "details"}}``.

Views raise `ApiError`; werkzeug's own HTTP errors (404, 405, 413, ...) and anything
unexpected are turned into the same shape here, so no HTML page or stack trace ever
reaches a client.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response
from werkzeug.exceptions import HTTPException

from fraud_common.jsonutil import dumps

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 2

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "unprocessable_entity",
    500: "internal_error",
    503: "service_unavailable",
}


class ApiError(Exception):
    """A client-facing error with its status, code, message and field details."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: list[dict[str, str]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []
        self.headers = dict(headers or {})


def validation_error(details: list[dict[str, str]]) -> ApiError:
    return ApiError(400, "validation_error", "the request is not valid", details)


def unavailable(message: str) -> ApiError:
    """503 with ``Retry-After``: nothing was accepted, the client may retry."""
    return ApiError(
        503, "service_unavailable", message, headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
    )


def json_response(
    payload: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """A JSON response written with the exact encoder (Decimal as string, UTC times)."""
    body = payload if isinstance(payload, str) else dumps(payload)
    return Response(body, status=status, headers=headers, mimetype="application/json")


def error_response(error: ApiError) -> Response:
    payload = {"error": {"code": error.code, "message": error.message, "details": error.details}}
    return json_response(payload, error.status, error.headers)


def _from_http_exception(exc: HTTPException) -> Response:
    status = exc.code or 500
    headers = {}
    if status == 405:
        allow = exc.get_response().headers.get("Allow")
        if allow:
            headers["Allow"] = allow
    message = (exc.description or exc.name or "error").strip()
    return error_response(ApiError(status, _CODES.get(status, "http_error"), message, [], headers))


def _from_unexpected(exc: Exception) -> Response:
    if isinstance(exc, HTTPException):
        return _from_http_exception(exc)
    log.exception("unhandled error")
    return error_response(ApiError(500, "internal_error", "internal error"))


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(ApiError, error_response)
    app.register_error_handler(HTTPException, _from_http_exception)
    app.register_error_handler(Exception, _from_unexpected)
