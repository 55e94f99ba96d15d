"""Log records on stdout: JSON lines in production, one readable line each on a terminal.

This module imports nothing of Flask or the service, so gunicorn's master logs with the same
formatter as the app. `LOG_FORMAT` chooses: `json`, `text`, or `auto` (text when stdout is a
terminal, JSON otherwise). A JSON line holds ts, level, event (a snake_case name), logger,
request_id and the fields passed in `extra=`. Anything named like an API key, and every
key-shaped token in any text (Blink's `blink_...` keys, whole), becomes "[redacted]", so a
mistake elsewhere cannot put a merchant's key into the logs.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

REDACTED = "[redacted]"
_HANDLER_NAME = "blinkpos-stdout"

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
# Blink keys are `blink_` and ~48 characters; the simulator's include '-' and '_'. The whole run
# is taken: stopping at the first '-' or '_' would let the rest of the secret through.
_KEY_SHAPED = re.compile(r"blink_[A-Za-z0-9_-]{16,}")
_IDENTIFIER = re.compile(r"[a-z0-9_]+")  # blink_request_duration_seconds is a name, not a key
_EVENT_NAME = re.compile(r"[a-z][a-z0-9_]*")

# LogRecord attributes that are not "extra" fields.
_RECORD_ATTRIBUTES = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


# --- request id ------------------------------------------------------------------------------
def bind_request_id(request_id: str) -> contextvars.Token:
    return _request_id.set(request_id)


def unbind_request_id(token: contextvars.Token) -> None:
    try:
        _request_id.reset(token)
    except ValueError:  # reset in another context than it was set in
        _request_id.set(None)


def sane_request_id(candidate: str | None) -> str:
    if candidate and _SANE_REQUEST_ID.match(candidate):
        return candidate
    return uuid.uuid4().hex


# --- redaction -------------------------------------------------------------------------------
def is_secret_field(name: str) -> bool:
    return name.lower().replace("-", "").replace("_", "") in _SECRET_FIELD_NAMES


def _mask_key(match: re.Match[str]) -> str:
    return match.group(0) if _IDENTIFIER.fullmatch(match.group(0)) else REDACTED


def redact_text(text: str) -> str:
    text = _KEY_SHAPED.sub(_mask_key, text)
    return _SECRET_IN_TEXT.sub(lambda match: match.group(1) + REDACTED, text)


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


# --- formatters ------------------------------------------------------------------------------
def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """event, logger, request_id and the extra fields of a record, redacted.

    A message that is not a snake_case name (a library's prose) keeps its text in `message`,
    under the stable event `<library>_log`.
    """
    message = record.getMessage()
    fields: dict[str, Any] = {"event": message}
    if not _EVENT_NAME.fullmatch(message):
        fields = {"event": record.name.split(".", 1)[0].lower() + "_log", "message": message}
    fields["logger"] = record.name
    fields["request_id"] = getattr(record, "request_id", None) or _request_id.get()
    for key, value in vars(record).items():
        if key not in _RECORD_ATTRIBUTES and key not in fields:
            fields[key] = value
    return redact(fields)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            **record_fields(record),
        }
        if record.exc_info:
            entry["exc"] = redact_text(self.formatException(record.exc_info))
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`12:04:05.120 INFO  request_completed method=GET path=/api/health status=200` for people."""

    def format(self, record: logging.LogRecord) -> str:
        fields = record_fields(record)
        fields.pop("logger")
        if fields["request_id"] is None:
            fields.pop("request_id")
        event = fields.pop("event")
        clock = datetime.fromtimestamp(record.created).strftime("%H:%M:%S.%f")[:-3]
        pairs = " ".join(f"{key}={_plain(value)}" for key, value in fields.items() if value is not None)
        line = f"{clock} {record.levelname:<7} {event} {pairs}".rstrip()
        if record.exc_info:
            line += "\n" + redact_text(self.formatException(record.exc_info))
        return line


def _plain(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    return json.dumps(text, ensure_ascii=False) if not text or " " in text or '"' in text else text


def make_formatter(log_format: str = "auto", stream: TextIO | None = None) -> logging.Formatter:
    """The formatter for LOG_FORMAT: text on a terminal when `auto`, JSON otherwise."""
    stream = sys.stdout if stream is None else stream
    if log_format == "text" or (log_format == "auto" and stream.isatty()):
        return TextFormatter()
    return JsonFormatter()


def configure_logging(level: str = "INFO", log_format: str = "auto") -> None:
    """Send every log record to stdout in LOG_FORMAT. Idempotent: replaces our handler if present.

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
    handler.setFormatter(make_formatter(log_format, sys.stdout))
    root.addHandler(handler)
    root.setLevel(level)
    # werkzeug's own access log duplicates our request_completed line.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)


def gunicorn_logconfig(level: str, log_format: str) -> dict[str, Any]:
    """gunicorn's logconfig_dict: our formatter on stdout, and no access log (the app logs each request)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"service": {"()": make_formatter, "log_format": log_format}},
        "handlers": {
            "stdout": {"class": "logging.StreamHandler", "formatter": "service", "stream": "ext://sys.stdout"},
        },
        "root": {"level": level, "handlers": ["stdout"]},
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": ["stdout"], "propagate": False},
            "gunicorn.access": {"level": "CRITICAL", "handlers": [], "propagate": False},
        },
    }
