"""How a Blink GraphQL answer becomes data or a typed BlinkError (the mapping documented in
client.py), and the field readers every operation shares. No message keeps an API key."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import BlinkError, BlinkForbidden, BlinkRejected, BlinkUnauthorized, BlinkUnavailable
from .types import Invoice

_AUTH_CODES = frozenset(
    {"UNAUTHENTICATED", "NOT_AUTHENTICATED", "UNAUTHORIZED", "NOT_AUTHORIZED", "FORBIDDEN", "INVALID_API_KEY"}
)
# A known key whose scopes (READ, RECEIVE, WRITE) do not cover the operation.
_SCOPE_CODES = frozenset({"NOT_AUTHORIZED", "FORBIDDEN"})
_AUTH_MESSAGE = re.compile(r"(not |un)authori[sz]ed|(not |un)authenticated|invalid api key", re.I)
_TRANSIENT_CODES = frozenset(
    {"TOO_MANY_REQUEST", "TOO_MANY_REQUESTS", "RATE_LIMITED", "INTERNAL_SERVER_ERROR", "SERVICE_UNAVAILABLE"}
)
_TRANSIENT_MESSAGE = re.compile(r"rate.?limit|too many requests|internal server error", re.I)
_PAYMENT_HASH = re.compile(r"^[0-9a-fA-F]{64}$")
_MAX_MESSAGE_CHARS = 300
_REDACTED = "[redacted]"


def _snake_case(code: str) -> str:
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", code.strip())
    return re.sub(r"[^0-9a-zA-Z]+", "_", spaced).strip("_").lower()


def _scrub(text: Any, secrets: Iterable[str]) -> str:
    """A server-supplied message made safe to log: no secret, bounded length."""
    result = str(text) if text is not None else ""
    for secret in secrets:
        if secret:
            result = result.replace(secret, _REDACTED)
    return result[:_MAX_MESSAGE_CHARS]


def decode_answer(status: int, body: bytes, operation: str, secrets: tuple[str, ...]) -> dict[str, Any]:
    """The ``data`` object of a GraphQL answer (HTTP status and body), or the typed error it amounts to."""
    if status == 403:
        raise BlinkForbidden("Blink refused the API key (HTTP 403)", operation=operation)
    if status == 401:
        raise BlinkUnauthorized("Blink refused the API key (HTTP 401)", operation=operation)
    if status == 429:
        raise BlinkUnavailable(
            "Blink rate limit reached (HTTP 429)", code="rate_limited", operation=operation
        )
    if status >= 500:
        raise BlinkUnavailable(f"Blink answered HTTP {status}", code=f"http_{status}", operation=operation)
    try:
        payload = json.loads(body)
    except ValueError:
        if status >= 400:
            raise BlinkRejected(
                f"http_{status}", f"Blink answered HTTP {status}", operation=operation
            ) from None
        raise malformed(operation, "answer is not JSON") from None
    if not isinstance(payload, dict):
        raise malformed(operation, "answer is not a JSON object")
    errors = payload.get("errors")
    if errors:
        raise _top_level_error(errors, operation, secrets)
    if status >= 400:
        raise BlinkRejected(f"http_{status}", f"Blink answered HTTP {status}", operation=operation)
    data = payload.get("data")
    if not isinstance(data, dict):
        raise malformed(operation, "answer has no data")
    return data


def _top_level_error(errors: Any, operation: str, secrets: tuple[str, ...]) -> BlinkError:
    if not isinstance(errors, list):
        return malformed(operation, "errors is not a list")
    entries = [entry for entry in errors if isinstance(entry, Mapping)] or [{}]
    codes = [_error_code(entry) for entry in entries]
    messages = [_scrub(entry.get("message"), secrets) for entry in entries]
    if any(code in _SCOPE_CODES for code in codes):
        return BlinkForbidden(messages[0] or "the API key may not do this", operation=operation)
    if any(code in _AUTH_CODES for code in codes) or any(_AUTH_MESSAGE.search(m) for m in messages):
        return BlinkUnauthorized(messages[0] or "Blink refused the API key", operation=operation)
    if any(code in _TRANSIENT_CODES for code in codes) or any(_TRANSIENT_MESSAGE.search(m) for m in messages):
        return BlinkUnavailable(messages[0] or "Blink is busy", code="blink_busy", operation=operation)
    return BlinkRejected(
        _snake_case(codes[0]) or "graphql_error", messages[0] or "GraphQL error", operation=operation
    )


def _error_code(entry: Mapping[str, Any]) -> str:
    extensions = entry.get("extensions")
    code = extensions.get("code") if isinstance(extensions, Mapping) else None
    code = code or entry.get("code")
    return str(code).upper() if code else ""


def raise_payload_errors(payload: dict[str, Any], operation: str, secrets: tuple[str, ...]) -> None:
    errors = payload.get("errors")
    if not errors:
        return
    if not isinstance(errors, list):
        raise malformed(operation, "payload errors is not a list")
    first = errors[0] if isinstance(errors[0], Mapping) else {}
    code = _snake_case(str(first.get("code") or "")) or "blink_rejected"
    raise BlinkRejected(
        code, _scrub(first.get("message"), secrets) or "rejected by Blink", operation=operation
    )


def invoice_of(payload: dict[str, Any], requested_sats: int, operation: str) -> Invoice:
    invoice = object_field(payload, "invoice", operation)
    payment_hash = string_field(invoice, "paymentHash", operation)
    if not _PAYMENT_HASH.match(payment_hash):
        raise malformed(operation, "paymentHash is not 64 hex digits")
    satoshis = invoice.get("satoshis")
    if not isinstance(satoshis, int) or isinstance(satoshis, bool):
        raise malformed(operation, "satoshis is not an integer")
    if satoshis != requested_sats:
        # An invoice for another amount must never be stored or paid.
        raise BlinkRejected(
            "amount_mismatch", f"asked {requested_sats} sats, Blink issued {satoshis}", operation=operation
        )
    return Invoice(
        payment_request=string_field(invoice, "paymentRequest", operation),
        payment_hash=payment_hash,
        satoshis=satoshis,
    )


def object_field(parent: Mapping[str, Any], name: str, operation: str) -> dict[str, Any]:
    value = parent.get(name)
    if not isinstance(value, dict):
        raise malformed(operation, f"{name} is missing")
    return value


def string_field(parent: Mapping[str, Any], name: str, operation: str) -> str:
    value = parent.get(name)
    if not isinstance(value, str) or not value:
        raise malformed(operation, f"{name} is missing")
    return value


def malformed(operation: str, detail: str) -> BlinkUnavailable:
    return BlinkUnavailable(
        f"malformed answer from Blink: {detail}", code="malformed_response", operation=operation
    )
