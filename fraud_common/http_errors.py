"""Every error a client sees, as JSON: ``{"error": {"code", "message", "details"}}``.

Views raise `ApiError`; `register_error_handlers` turns it, werkzeug's own HTTP errors
(404, 405, 413, ...), a Redis that is away and anything unexpected into that one shape,
so no HTML page or stack trace ever reaches a client of any service.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response
from werkzeug.exceptions import HTTPException

from fraud_common.jsonutil import dumps
from fraud_common.redis_client import RETRYABLE_ERRORS

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 2
INTERNAL_MESSAGE = "internal error"

# The contract's codes; any other status gets a code derived from werkzeug's name.
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
# werkzeug writes these for its HTML page; the JSON body brings its own.
_BODY_HEADERS = frozenset({"content-type", "content-length"})


class ApiError(Exception):
    """A client-facing error with its status, code, message, field details and headers."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: list[dict[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []
        self.headers = dict(headers or {})


def validation_error(details: list[dict[str, str]]) -> ApiError:
    """400 ``validation_error``; ``details`` name each bad field (``field``, ``message``)."""
    return ApiError(400, "validation_error", "the request is not valid", details)


def field_error(field: str, message: str) -> ApiError:
    """400 ``validation_error`` for one bad field (a query parameter, a header)."""
    return ApiError(
        400, "validation_error", f"{field} {message}", [{"field": field, "message": message}]
    )


def unavailable(message: str) -> ApiError:
    """503 with ``Retry-After``: nothing was accepted, the client may retry."""
    return ApiError(
        503, "service_unavailable", message, headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
    )


def json_response(
    payload: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """A JSON response written with the exact encoder (Decimal as string, UTC times);
    a ``str`` payload is taken as JSON already encoded."""
    body = payload if isinstance(payload, str) else dumps(payload)
    return Response(body, status=status, headers=headers, mimetype="application/json")


def error_response(error: ApiError) -> Response:
    payload = {"error": {"code": error.code, "message": error.message, "details": error.details}}
    return json_response(payload, error.status, error.headers)


def http_error(exc: HTTPException) -> ApiError:
    """werkzeug's error as an `ApiError`, keeping the headers it chose (Allow on a 405)."""
    status = exc.code or 500
    headers = {
        name: value
        for name, value in exc.get_response().headers.items()
        if name.lower() not in _BODY_HEADERS
    }
    message = (exc.description or exc.name or "error").strip()
    return ApiError(status, _CODES.get(status) or _code_of(exc), message, [], headers)


def _code_of(exc: HTTPException) -> str:
    """``I'm a teapot`` -> ``i_m_a_teapot``."""
    name = (exc.name or "error").lower()
    return "".join(c if c.isalnum() else "_" for c in name).strip("_") or "error"


def register_error_handlers(app: Flask, *, unavailable_message: str) -> None:
    """Answer every error of ``app`` as JSON.

    A retryable Redis error (`RETRYABLE_ERRORS`) that reaches Flask is a 503 with
    ``unavailable_message`` and ``Retry-After``; anything else unexpected is a 500
    ``internal_error`` with one fixed message, its traceback only in the log.
    """

    def unexpected(exc: Exception) -> Response:
        if isinstance(exc, HTTPException):
            return error_response(http_error(exc))
        if isinstance(exc, RETRYABLE_ERRORS):
            log.warning("redis unavailable", exc_info=exc)
            return error_response(unavailable(unavailable_message))
        log.exception("unhandled error", exc_info=exc)
        return error_response(ApiError(500, "internal_error", INTERNAL_MESSAGE))

    app.register_error_handler(ApiError, error_response)
    app.register_error_handler(HTTPException, lambda exc: error_response(http_error(exc)))
    app.register_error_handler(Exception, unexpected)
