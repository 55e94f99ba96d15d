"""JSON-lines logging on stdout, a request id per request, and defensive redaction of API keys.

One object per line: ts, level, event (the log message, a snake_case name), logger, request_id and
whatever the call passed in `extra=`. Anything named like an API key is replaced by "[redacted]",
in extra fields, in the message text and in formatted tracebacks, so a mistake elsewhere cannot put
a merchant's key into the logs.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, g, request

REDACTED = "[redacted]"
REQUEST_ID_HEADER = "X-Request-ID"
_HANDLER_NAME = "blinkpos-json"

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

# A client-supplied request id is echoed into logs and headers: keep it short and boring.
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")

# Field names compared after lowercasing and dropping '-' and '_': apiKey, api_key, userApiKey, X-API-KEY.
_SECRET_FIELD_NAMES = {"apikey", "userapikey", "xapikey", "blinkposapikey", "merchantapikey"}
_SECRET_IN_TEXT = re.compile(
    r"""(?ix)
    (\b(?:x-api-key|user_?api_?key|merchant_?api_?key|api_?key)\b["']?\s*[:=]\s*["']?)  # name and separator
    ([^\s"',;&}\]]+)                                                             # the value
    """
)
_BLINK_KEY_IN_TEXT = re.compile(r"\bblink_[A-Za-z0-9]{16,}\b")

# LogRecord attributes that are not "extra" fields.
_RECORD_ATTRIBUTES = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def current_request_id() -> str | None:
    return _request_id.get()


def is_secret_field(name: str) -> bool:
    return name.lower().replace("-", "").replace("_", "") in _SECRET_FIELD_NAMES


def redact_text(text: str) -> str:
    text = _SECRET_IN_TEXT.sub(lambda match: match.group(1) + REDACTED, text)
    return _BLINK_KEY_IN_TEXT.sub(REDACTED, text)


def redact(value: Any) -> Any:
    """A copy of value with secret-named fields replaced, recursively; strings have inline keys masked."""
    if isinstance(value, Mapping):
        return {
            key: REDACTED if isinstance(key, str) and is_secret_field(key) else redact(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(item) for item in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "event": record.getMessage(),
            "logger": record.name,
            "request_id": getattr(record, "request_id", None) or current_request_id(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(redact(entry), default=str, ensure_ascii=False)


def configure_logging(level: str = "INFO") -> None:
    """Send every log record to stdout as JSON lines. Idempotent: replaces our handler if present.

    Other console handlers on the root logger (gunicorn's logconfig puts one there) are replaced too,
    so each record is written once and in our format; capture handlers (pytest's) are left alone.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        is_console = type(handler) is logging.StreamHandler and handler.stream in (sys.stdout, sys.stderr)
        if handler.get_name() == _HANDLER_NAME or is_console:
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stdout)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(level)
    # werkzeug's own access log duplicates our request_completed line.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)


def sane_request_id(candidate: str | None) -> str:
    if candidate and _SANE_REQUEST_ID.match(candidate):
        return candidate
    return uuid.uuid4().hex


def init_request_logging(app: Flask) -> None:
    """Give every request an id (the client's X-Request-ID if sane), log its completion, echo the id."""
    access_log = logging.getLogger("service.access")

    @app.before_request
    def assign_request_id() -> None:
        request_id = sane_request_id(request.headers.get(REQUEST_ID_HEADER))
        g.request_id = request_id
        g.request_started = time.perf_counter()
        g.request_id_token = _request_id.set(request_id)

    @app.after_request
    def log_and_echo_request_id(response: Response) -> Response:
        request_id = g.get("request_id")
        if request_id is None:  # the request failed before our before_request hook ran
            request_id = sane_request_id(None)
        response.headers[REQUEST_ID_HEADER] = request_id
        started = g.get("request_started")
        access_log.info(
            "request_completed",
            extra={
                "request_id": request_id,
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2) if started else None,
            },
        )
        return response

    @app.teardown_request
    def forget_request_id(_error: BaseException | None) -> None:
        token = g.pop("request_id_token", None)
        if token is not None:
            try:
                _request_id.reset(token)
            except ValueError:  # torn down in another context than it was set in
                _request_id.set(None)
