"""JSON errors for every failure: ``{"error": {"code", "message", "details"}}``.

Never HTML, never a stack trace; the details of an unexpected error go to the log.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from flask import Flask, Response
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as WerkzeugResponse

from fraud_common.jsonutil import dumps
from fraud_common.redis_client import RETRYABLE_ERRORS

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 2


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []


def validation_error(field: str, message: str) -> ApiError:
    return ApiError(
        400,
        "validation_error",
        "the request has invalid parameters",
        [{"field": field, "message": message}],
    )


def json_response(body: Any, status: int = 200) -> Response:
    return Response(dumps(body), status=status, mimetype="application/json")


def error_response(
    status: int, code: str, message: str, details: list[dict[str, str]] | None = None
) -> Response:
    body = {"error": {"code": code, "message": message, "details": details or []}}
    return json_response(body, status)


def _code_of(exc: HTTPException) -> str:
    name = (exc.name or "error").lower()
    return "".join(c if c.isalnum() else "_" for c in name).strip("_")


def register(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return error_response(exc.status, exc.code, exc.message, exc.details)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> WerkzeugResponse:
        # Keep the headers werkzeug chose (Allow on a 405, for instance).
        response = exc.get_response()
        status = exc.code or 500
        body = {"error": {"code": _code_of(exc), "message": exc.description or "", "details": []}}
        response.set_data(dumps(body))
        response.mimetype = "application/json"
        response.status_code = status
        return response

    @app.errorhandler(redis.RedisError)
    def _redis_error(exc: redis.RedisError) -> Response:
        if isinstance(exc, RETRYABLE_ERRORS):
            log.warning("redis unavailable", exc_info=True)
            response = error_response(
                503, "service_unavailable", "the alert store is unavailable, retry later"
            )
            response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
            return response
        log.exception("redis error")
        return error_response(500, "internal_error", "internal server error")

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error")
        return error_response(500, "internal_error", "internal server error")
