"""API errors and the JSON error handlers.

Every error response has the DESIGN §4 shape `{"error": str, "code": snake_case, "details": {...}}`.
`error` stays a plain string because the POS page shows it to the cashier. No stack trace, SQL or
API key ever reaches a response: unexpected exceptions are logged server-side and answered with a
fixed 500 body.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from service.store.errors import StoreUnavailable

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error with an HTTP status and a stable snake_case code the client may branch on."""

    retry_after: int | None = None  # seconds, sent as Retry-After when set

    def __init__(self, status: int, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = dict(details or {})

    def headers(self) -> dict[str, str]:
        return {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}


class BadRequest(ApiError):
    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(400, code, message, details)


class Unauthorized(ApiError):
    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(401, code, message, details)


class Forbidden(ApiError):
    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(403, code, message, details)


class NotFound(ApiError):
    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(404, code, message, details)


class Conflict(ApiError):
    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(409, code, message, details)


class TooManyRequests(ApiError):
    def __init__(
        self, code: str, message: str, retry_after: int, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(429, code, message, {"retryAfter": retry_after, **(details or {})})
        self.retry_after = retry_after


class BadGateway(ApiError):
    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(502, code, message, details)


class ServiceUnavailable(ApiError):
    def __init__(
        self,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(503, code, message, details)
        self.retry_after = retry_after


class GatewayTimeout(ApiError):
    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(504, code, message, details)


# Werkzeug's errors, renamed to our stable codes; anything else falls back to its snake_cased name.
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
}
_HTTP_MESSAGES = {
    404: "Not found",
    405: "Method not allowed",
    413: "Request body too large",
    415: "Unsupported media type: send application/json",
}


def error_response(
    status: int, code: str, message: str, details: dict[str, Any] | None = None
) -> tuple[Response, int]:
    return jsonify({"error": message, "code": code, "details": details or {}}), status


def register_error_handlers(app: Flask) -> None:
    """JSON for ApiError, for werkzeug HTTP errors, for the store being down, and a catch-all 500."""

    @app.errorhandler(ApiError)
    def handle_api_error(error: ApiError) -> tuple[Response, int, dict[str, str]]:
        response, status = error_response(error.status, error.code, error.message, error.details)
        return response, status, error.headers()

    @app.errorhandler(HTTPException)
    def handle_http_exception(error: HTTPException) -> tuple[Response, int, dict[str, str]]:
        status = error.code or 500
        code = _HTTP_CODES.get(status) or _snake_case(error.name)
        message = _HTTP_MESSAGES.get(status) or error.name
        details: dict[str, Any] = {}
        headers: dict[str, str] = {}
        if status == 405 and getattr(error, "valid_methods", None):
            details["allowedMethods"] = sorted(error.valid_methods)
            headers["Allow"] = ", ".join(sorted(error.valid_methods))
        response, status = error_response(status, code, message, details)
        return response, status, headers

    @app.errorhandler(StoreUnavailable)
    def handle_store_unavailable(error: StoreUnavailable) -> tuple[Response, int, dict[str, str]]:
        log.warning("database_unavailable", extra={"error_type": type(error).__name__})
        response, status = error_response(
            503, "database_unavailable", "The payment database is unavailable; try again shortly"
        )
        return response, status, {"Retry-After": "5"}

    @app.errorhandler(Exception)
    def handle_unexpected(error: Exception) -> tuple[Response, int]:
        # The traceback goes to the log (secrets redacted by the log filter), never to the client.
        log.exception("unhandled_exception", extra={"error_type": type(error).__name__})
        return error_response(500, "internal_error", "Internal server error")


def _snake_case(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
