"""Request schemas of the HTTP API (DESIGN §4): the base every body and path schema builds on,
and the forward and payment-status requests (the sale request is service/api/sale_request.py).

``schema.parse(body)`` returns a dataclass from ``service.payments.inputs`` or raises
ValidationFailed (a 400) whose ``code`` is stable: clients branch on it. Every broken rule,
field or cross-field, leaves its message in ``details.fields``; the highest-ranked one
(the order of ``ErrorCode``) decides ``code`` and the human ``error`` text.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import EXCLUDE, ValidationError, fields, validate

from service.api.fields import (
    CODE_OF_MESSAGE,
    ApiKeyField,
    ApiSchema,
    ErrorCode,
    MemoField,
    NonBlankString,
    PaymentHashField,
)
from service.api.request_messages import USER_API_KEY_REQUIRED, USER_WALLET_ID_REQUIRED
from service.errors import BadRequest
from service.payments.inputs import ForwardPaymentRequest, ForwardWithTipsRequest

MAX_WALLET_ID_CHARS = 128


class ValidationFailed(BadRequest):
    """A request broke a rule: a 400 with a stable code and every message by field path.

    ``fields`` maps a dotted field path (``tipRecipients.1.username``) to its messages.
    """

    def __init__(self, code: str, message: str, fields: dict[str, list[str]]) -> None:
        super().__init__(code, message, {"fields": fields})
        self.fields = fields


class RequestSchema(ApiSchema):
    """Loads the fields, then ``build`` applies the cross-field rules once and makes the request."""

    class Meta:
        unknown = EXCLUDE

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._codes: dict[str, ErrorCode] = {}

    def limit(self, name: str, maximum: int, code: ErrorCode, text: str) -> None:
        """An upper bound known only per app (from Config), documented like any Range."""
        field = self.fields[name]
        field.validators = [*field.validators, validate.Range(max=maximum, error=text)]
        self._codes[text] = code

    def parse(self, body: object) -> Any:
        """The request for ``body`` (the decoded JSON), or ValidationFailed."""
        try:
            data, errors = self.load(body), {}  # type: ignore[arg-type]  # a non-object fails
        except ValidationError as error:
            # Only the messages and loaded values go on: the error's .data holds the raw body (API key).
            data, errors = error.valid_data or {}, _flatten_messages(error.messages)
        request = self.build(data, body, errors) if isinstance(body, Mapping) else None
        if errors or request is None:
            raise self._failure(errors)
        return request

    def build(self, data: dict[str, Any], original: Mapping[str, Any], errors: dict[str, list[str]]) -> Any:
        raise NotImplementedError

    def _failure(self, by_field: dict[str, list[str]]) -> ValidationFailed:
        coded = [
            (self._codes.get(text) or CODE_OF_MESSAGE.get(text), text)
            for texts in by_field.values()
            for text in texts
        ]
        for code in ErrorCode:
            for message_code, text in coded:
                if message_code is code:
                    return ValidationFailed(code, text, by_field)
        path, texts = next(iter(by_field.items()), ("", ["invalid request"]))
        text = f"{path}: {texts[0]}" if path and path != "_schema" else texts[0]
        return ValidationFailed(ErrorCode.INVALID_REQUEST, text, by_field)


class ForwardWithTipsSchema(RequestSchema):
    """``POST /api/blink/forward-with-tips`` → ForwardWithTipsRequest."""

    payment_hash = PaymentHashField(required=True)
    total_amount = fields.Integer(
        strict=True,
        allow_none=True,
        load_default=None,
        validate=validate.Range(min=0),
    )
    memo = MemoField(allow_none=True, load_default=None)

    def __init__(self, *, max_invoice_sats: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        text = f"totalAmount must be at most {max_invoice_sats} sats"
        self.limit("total_amount", max_invoice_sats, ErrorCode.AMOUNT_TOO_LARGE, text)

    def build(self, data: dict[str, Any], original: Mapping[str, Any], errors: dict[str, list[str]]) -> Any:
        return (
            ForwardWithTipsRequest(data["payment_hash"], data["total_amount"], data["memo"])
            if not errors
            else None
        )


class ForwardPaymentSchema(RequestSchema):
    """``POST /api/blink/forward-payment`` → ForwardPaymentRequest; amount/memo the page sends are ignored."""

    payment_hash = PaymentHashField(required=True)
    api_key = ApiKeyField(
        data_key="userApiKey",
        required=True,
        error_messages={"required": USER_API_KEY_REQUIRED, "null": USER_API_KEY_REQUIRED},
    )
    user_wallet_id = NonBlankString(
        required=True,
        strip=True,
        validate=validate.Length(max=MAX_WALLET_ID_CHARS, error="userWalletId is too long"),
        error_messages={"required": USER_WALLET_ID_REQUIRED, "null": USER_WALLET_ID_REQUIRED},
    )

    def build(self, data: dict[str, Any], original: Mapping[str, Any], errors: dict[str, list[str]]) -> Any:
        if errors:
            return None
        return ForwardPaymentRequest(data["payment_hash"], data["user_wallet_id"], data["api_key"])


class PaymentHashPathSchema(RequestSchema):
    """The ``<payment_hash>`` of a URL → its canonical form."""

    payment_hash = PaymentHashField(
        data_key="payment_hash", required=True, metadata={"description": "the invoice's payment hash"}
    )

    def build(self, data: dict[str, Any], original: Mapping[str, Any], errors: dict[str, list[str]]) -> Any:
        return None if errors else data["payment_hash"]


def _flatten_messages(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """marshmallow's nested error messages as ``{"tipRecipients.0.username": [...]}``."""
    flat: dict[str, list[str]] = {}
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            path = prefix if key == "_schema" and prefix else f"{prefix}.{key}" if prefix else str(key)
            for sub_path, texts in _flatten_messages(value, path).items():
                flat.setdefault(sub_path, []).extend(texts)
    elif isinstance(messages, list | tuple):
        for item in messages:
            for sub_path, texts in _flatten_messages(item, prefix).items():
                flat.setdefault(sub_path, []).extend(texts)
    else:
        flat.setdefault(prefix or "_schema", []).append(str(messages))
    return flat
