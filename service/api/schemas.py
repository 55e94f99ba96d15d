"""Marshmallow schemas of the HTTP API (DESIGN §4): request bodies in, answers out.

A request schema's ``parse(body)`` returns a dataclass from ``service.payments.inputs`` or
raises ``ValidationFailed`` (a 400) whose ``code`` is stable: clients branch on it. Every
failing rule leaves its message in ``fields``; the highest-ranked one (``_CODE_PRIORITY``)
decides ``code`` and the human ``error`` text.

Decisions on what the POS page may send:
- Amounts are strict JSON integers of sats: ``1.5``, ``"100"`` and ``true`` are refused (the
  POS page sends numbers; a string amount means a confused client, not one to guess for).
- Unknown fields are ignored (the page sends NWC/LN-address extras) and never echoed.
- ``tipRecipients: []`` is accepted on a sale without tip, because the POS page sends it on
  every such sale; with a tip, no recipient at all is ``tip_recipient_required``.
- ``share`` is optional: absent on every recipient means equal shares; absent on only some is
  ``invalid_tip_recipients``. Shares are JSON numbers (weights, not percentages).
- ``tipRecipient`` next to ``tipRecipients`` must name one of them (the list decides the split).
- ``userWalletId`` and ``walletId`` both given must be equal.
- Usernames are lowercased; surrounding spaces and a ``@blink.sv`` suffix are tolerated.
- Display-only values (``tipPercent``, ``*Display``, ``displayCurrency``) are checked for shape
  but never used for money.
"""

import functools
import math
from collections.abc import Mapping
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from typing import Any, ClassVar

from marshmallow import (
    EXCLUDE,
    Schema,
    ValidationError,
    fields,
    post_load,
    validate,
    validates,
    validates_schema,
)

from service.domain.model import TipRecipient
from service.domain.normalize import normalize_payment_hash, normalize_username
from service.errors import BadRequest
from service.payments.inputs import ForwardPaymentRequest, ForwardWithTipsRequest, InvoiceRequest
from service.payments.memos import MAX_MEMO_BYTES

MAX_TIP_RECIPIENTS = 10
SUPPORTED_CURRENCIES = ("BTC", "USD")
_MAX_API_KEY_CHARS = 256
_MAX_WALLET_ID_CHARS = 128
_MAX_TIP_PERCENT = 1000
_MAX_DISPLAY_AMOUNT = 10**15


class ErrorCode(StrEnum):
    AMOUNT_REQUIRED = "amount_required"
    INVALID_AMOUNT = "invalid_amount"
    AMOUNT_TOO_LARGE = "amount_too_large"
    API_KEY_REQUIRED = "api_key_required"
    WALLET_ID_REQUIRED = "wallet_id_required"
    INVALID_BASE_AMOUNT = "invalid_base_amount"
    TIP_AMOUNT_MISMATCH = "tip_amount_mismatch"
    TIP_RECIPIENT_REQUIRED = "tip_recipient_required"
    INVALID_USERNAME = "invalid_username"
    INVALID_TIP_RECIPIENTS = "invalid_tip_recipients"
    MEMO_TOO_LONG = "memo_too_long"
    UNSUPPORTED_CURRENCY = "unsupported_currency"
    PAYMENT_HASH_REQUIRED = "payment_hash_required"
    INVALID_PAYMENT_HASH = "invalid_payment_hash"
    INVALID_REQUEST = "invalid_request"


# When several rules fail, the first in this order names the error.
_CODE_PRIORITY: tuple[ErrorCode, ...] = (
    ErrorCode.PAYMENT_HASH_REQUIRED,
    ErrorCode.INVALID_PAYMENT_HASH,
    ErrorCode.AMOUNT_REQUIRED,
    ErrorCode.INVALID_AMOUNT,
    ErrorCode.AMOUNT_TOO_LARGE,
    ErrorCode.API_KEY_REQUIRED,
    ErrorCode.WALLET_ID_REQUIRED,
    ErrorCode.INVALID_BASE_AMOUNT,
    ErrorCode.TIP_AMOUNT_MISMATCH,
    ErrorCode.TIP_RECIPIENT_REQUIRED,
    ErrorCode.INVALID_USERNAME,
    ErrorCode.INVALID_TIP_RECIPIENTS,
    ErrorCode.MEMO_TOO_LONG,
    ErrorCode.UNSUPPORTED_CURRENCY,
)

# Every message a rule can produce, and the code it stands for. Messages never quote the input
# (an API key must not come back in an error).
_CODE_OF_MESSAGE: dict[str, ErrorCode] = {}


def _message(code: ErrorCode, text: str) -> str:
    _CODE_OF_MESSAGE[text] = code
    return text


AMOUNT_REQUIRED = _message(ErrorCode.AMOUNT_REQUIRED, "amount is required")
INVALID_AMOUNT = _message(ErrorCode.INVALID_AMOUNT, "amount must be a positive whole number of sats")
API_KEY_REQUIRED = _message(ErrorCode.API_KEY_REQUIRED, "apiKey is required")
USER_API_KEY_REQUIRED = _message(ErrorCode.API_KEY_REQUIRED, "userApiKey is required")
WALLET_ID_REQUIRED = _message(ErrorCode.WALLET_ID_REQUIRED, "userWalletId (or walletId) is required")
USER_WALLET_ID_REQUIRED = _message(ErrorCode.WALLET_ID_REQUIRED, "userWalletId is required")
INVALID_BASE_AMOUNT = _message(
    ErrorCode.INVALID_BASE_AMOUNT, "baseAmount must be a whole number of sats, at least 0"
)
BASE_ABOVE_AMOUNT = _message(ErrorCode.INVALID_BASE_AMOUNT, "baseAmount cannot be larger than amount")
INVALID_TIP_AMOUNT = _message(
    ErrorCode.TIP_AMOUNT_MISMATCH, "tipAmount must be a whole number of sats, at least 0"
)
TIP_ABOVE_AMOUNT = _message(ErrorCode.TIP_AMOUNT_MISMATCH, "tipAmount cannot be larger than amount")
TIP_AMOUNT_MISMATCH = _message(
    ErrorCode.TIP_AMOUNT_MISMATCH, "tipAmount differs by more than 1 sat from amount minus baseAmount"
)
TIP_RECIPIENT_REQUIRED = _message(
    ErrorCode.TIP_RECIPIENT_REQUIRED, "a sale with a tip needs tipRecipient or tipRecipients"
)
INVALID_USERNAME = _message(
    ErrorCode.INVALID_USERNAME,
    "not a valid Blink username (3 to 50 of a-z, 0-9 and _, not starting with 1, 3, bc1 or lnbc1)",
)
TIP_RECIPIENTS_NOT_A_LIST = _message(
    ErrorCode.INVALID_TIP_RECIPIENTS, "tipRecipients must be a list of objects with a username and a share"
)
TIP_RECIPIENT_NOT_AN_OBJECT = _message(
    ErrorCode.INVALID_TIP_RECIPIENTS, "each tip recipient must be an object with a username and a share"
)
TIP_RECIPIENT_USERNAME_MISSING = _message(
    ErrorCode.INVALID_TIP_RECIPIENTS, "each tip recipient needs a username"
)
TOO_MANY_TIP_RECIPIENTS = _message(
    ErrorCode.INVALID_TIP_RECIPIENTS, f"tipRecipients must list at most {MAX_TIP_RECIPIENTS} recipients"
)
DUPLICATE_TIP_RECIPIENT = _message(ErrorCode.INVALID_TIP_RECIPIENTS, "tipRecipients lists a username twice")
INVALID_SHARE = _message(ErrorCode.INVALID_TIP_RECIPIENTS, "share must be a positive number")
PARTIAL_SHARES = _message(
    ErrorCode.INVALID_TIP_RECIPIENTS, "give a share to every tip recipient or to none (equal shares)"
)
TIP_RECIPIENT_NOT_LISTED = _message(
    ErrorCode.INVALID_TIP_RECIPIENTS, "tipRecipient must be one of tipRecipients"
)
MEMO_TOO_LONG = _message(ErrorCode.MEMO_TOO_LONG, f"memo must be at most {MAX_MEMO_BYTES} bytes of UTF-8")
UNSUPPORTED_CURRENCY = _message(
    ErrorCode.UNSUPPORTED_CURRENCY, f"currency must be one of {', '.join(SUPPORTED_CURRENCIES)}"
)
PAYMENT_HASH_REQUIRED = _message(ErrorCode.PAYMENT_HASH_REQUIRED, "paymentHash is required")
INVALID_PAYMENT_HASH = _message(
    ErrorCode.INVALID_PAYMENT_HASH, "paymentHash must be 64 hexadecimal characters"
)
# Messages that stay invalid_request (listed for readers; they need no registration).
WALLET_IDS_DISAGREE = "userWalletId and walletId must be the same wallet"
MEMO_NOT_TEXT = "memo must be valid Unicode text"


class ValidationFailed(BadRequest):
    """A request body broke a rule: a 400 with a stable code and every message by field path.

    ``fields`` maps a dotted field path (``tipRecipients.1.username``) to its messages.
    """

    def __init__(self, code: str, message: str, fields: dict[str, list[str]]) -> None:
        super().__init__(code, message, {"fields": fields})
        self.fields = fields


# --- fields ---------------------------------------------------------------------------------------


class NonBlankString(fields.String):
    """A string that counts as missing (the field's ``required`` error) when empty or only spaces."""

    def __init__(self, *, strip: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.strip = strip

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if not text.strip():
            raise self.make_error("required")
        return text.strip() if self.strip else text


class UsernameField(fields.String):
    """A Blink username, normalised to lowercase; with ``blank_is_none`` an empty string means absent."""

    default_error_messages = {"invalid": INVALID_USERNAME, "invalid_username": INVALID_USERNAME}

    def __init__(self, *, blank_is_none: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.blank_is_none = blank_is_none

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> str | None:
        text = super()._deserialize(value, attr, data, **kwargs)
        if self.blank_is_none and not text.strip():
            return None
        username = normalize_username(text)
        if username is None:
            raise self.make_error("invalid_username")
        return username


class ShareField(fields.Float):  # a Float for OpenAPI ("number"); loading is its own
    """A positive weight given as a JSON number, loaded as an exact Fraction.

    Floats go through their shortest repr, so 33.3 is 333/10, not the binary approximation.
    Dumped back as an int when whole, else as the float nearest to it.
    """

    default_error_messages = {"invalid": INVALID_SHARE}

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> Fraction:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.make_error("invalid")
        if isinstance(value, float) and not math.isfinite(value):
            raise self.make_error("invalid")
        share = Fraction(value) if isinstance(value, int) else Fraction(repr(value))
        if share <= 0:
            raise self.make_error("invalid")
        return share

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> int | float | None:
        if value is None:
            return None
        share = Fraction(value)
        return share.numerator if share.denominator == 1 else float(share)


class MemoField(fields.String):
    """Free text that Blink can carry: valid Unicode, at most 639 bytes of UTF-8."""

    default_error_messages = {"too_long": MEMO_TOO_LONG, "not_text": MEMO_NOT_TEXT}

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            encoded = text.encode("utf-8")
        except UnicodeEncodeError as error:  # a lone surrogate from a JSON \ud800 escape
            raise self.make_error("not_text") from error
        if len(encoded) > MAX_MEMO_BYTES:
            raise self.make_error("too_long")
        return text


class PaymentHashField(fields.String):
    """A payment hash: 64 hex digits, loaded lowercase."""

    default_error_messages = {
        "required": PAYMENT_HASH_REQUIRED,
        "null": PAYMENT_HASH_REQUIRED,
        "invalid": INVALID_PAYMENT_HASH,
        "bad_hash": INVALID_PAYMENT_HASH,
    }

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if not text.strip():
            raise self.make_error("required")
        payment_hash = normalize_payment_hash(text)
        if payment_hash is None:
            raise self.make_error("bad_hash")
        return payment_hash


class WholeList(fields.List):
    """A list that loads completely or not at all.

    marshmallow keeps the valid part of a list whose items failed; the cross-field rules must
    not mistake that part for the whole list.
    """

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> list:
        try:
            return super()._deserialize(value, attr, data, **kwargs)
        except ValidationError as error:
            raise ValidationError(error.messages) from None


def _supported_currency(value: str) -> None:
    if value.upper() not in SUPPORTED_CURRENCIES:
        raise ValidationError(UNSUPPORTED_CURRENCY)


def _display_amount_in_range(value: Decimal) -> None:
    # A function, not validate.Range: apispec would copy Range's bounds into the OpenAPI
    # document as Decimals, which JSON cannot carry. The upper bound keeps absurd exponents
    # ("1e999999") out of the database's numeric columns.
    if not 0 <= value <= _MAX_DISPLAY_AMOUNT:
        raise ValidationError(f"display amounts must be between 0 and {_MAX_DISPLAY_AMOUNT}")


def _tip_percent_in_range(value: Decimal) -> None:
    if not 0 <= value <= _MAX_TIP_PERCENT:
        raise ValidationError(f"tipPercent must be between 0 and {_MAX_TIP_PERCENT}")


def _display_amount(**kwargs: Any) -> fields.Decimal:
    return fields.Decimal(allow_none=True, load_default=None, validate=_display_amount_in_range, **kwargs)


# --- request schemas ------------------------------------------------------------------------------


class RequestSchema(Schema):
    """Base of the request schemas: ignores unknown fields, ``parse`` raises ValidationFailed."""

    class Meta:
        unknown = EXCLUDE

    def parse(self, body: object) -> Any:
        """The request dataclass for ``body`` (the decoded JSON), or ValidationFailed."""
        try:
            return self.load(body)  # type: ignore[arg-type]  # a non-object body is a validation error
        except ValidationError as error:
            # Built from the messages only: the exception's .data holds the raw body (API key).
            raise self._failure(error.messages) from None

    def _code_of(self, message: str) -> ErrorCode | None:
        return _CODE_OF_MESSAGE.get(message)

    def _failure(self, messages: Any) -> ValidationFailed:
        by_field = _flatten_messages(messages)
        coded = [(self._code_of(text), text) for texts in by_field.values() for text in texts]
        for code in _CODE_PRIORITY:
            for message_code, text in coded:
                if message_code is code:
                    return ValidationFailed(code, text, by_field)
        path, texts = next(iter(by_field.items()), ("", ["invalid request"]))
        text = f"{path}: {texts[0]}" if path and path != "_schema" else texts[0]
        return ValidationFailed(ErrorCode.INVALID_REQUEST, text, by_field)


class TipRecipientSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    error_messages: ClassVar[dict[str, str]] = {"type": TIP_RECIPIENT_NOT_AN_OBJECT}

    username = UsernameField(
        required=True,
        error_messages={"required": TIP_RECIPIENT_USERNAME_MISSING, "null": TIP_RECIPIENT_USERNAME_MISSING},
    )
    share = ShareField(allow_none=True, load_default=None)


class CreateInvoiceSchema(RequestSchema):
    """``POST /api/blink/create-invoice`` → InvoiceRequest. ``max_invoice_sats`` comes from Config."""

    amount = fields.Integer(
        required=True,
        strict=True,
        validate=validate.Range(min=1, error=INVALID_AMOUNT),
        error_messages={"required": AMOUNT_REQUIRED, "null": AMOUNT_REQUIRED, "invalid": INVALID_AMOUNT},
    )
    currency = fields.String(
        load_default="BTC",
        validate=_supported_currency,
        error_messages={"invalid": UNSUPPORTED_CURRENCY, "null": UNSUPPORTED_CURRENCY},
    )
    memo = MemoField(allow_none=True, load_default="")
    api_key = NonBlankString(
        data_key="apiKey",
        required=True,
        validate=validate.Length(max=_MAX_API_KEY_CHARS, error="apiKey is too long"),
        error_messages={"required": API_KEY_REQUIRED, "null": API_KEY_REQUIRED},
    )
    user_wallet_id = fields.String(
        data_key="userWalletId",
        allow_none=True,
        load_default=None,
        validate=validate.Length(max=_MAX_WALLET_ID_CHARS, error="userWalletId is too long"),
    )
    wallet_id = fields.String(
        data_key="walletId",
        allow_none=True,
        load_default=None,
        validate=validate.Length(max=_MAX_WALLET_ID_CHARS, error="walletId is too long"),
    )
    display_currency = fields.String(
        data_key="displayCurrency",
        allow_none=True,
        load_default=None,
        validate=validate.Regexp(r"^[A-Za-z0-9]{1,10}$", error="displayCurrency must be a currency code"),
    )
    base_amount = fields.Integer(
        data_key="baseAmount",
        strict=True,
        allow_none=True,
        load_default=None,
        validate=validate.Range(min=0, error=INVALID_BASE_AMOUNT),
        error_messages={"invalid": INVALID_BASE_AMOUNT},
    )
    tip_amount = fields.Integer(
        data_key="tipAmount",
        strict=True,
        allow_none=True,
        load_default=None,
        validate=validate.Range(min=0, error=INVALID_TIP_AMOUNT),
        error_messages={"invalid": INVALID_TIP_AMOUNT},
    )
    tip_percent = fields.Decimal(
        data_key="tipPercent",
        allow_none=True,
        load_default=None,
        validate=_tip_percent_in_range,
    )
    tip_recipient = UsernameField(
        data_key="tipRecipient", allow_none=True, load_default=None, blank_is_none=True
    )
    tip_recipients = WholeList(
        fields.Nested(TipRecipientSchema),
        data_key="tipRecipients",
        allow_none=True,
        load_default=None,
        validate=validate.Length(max=MAX_TIP_RECIPIENTS, error=TOO_MANY_TIP_RECIPIENTS),
        error_messages={"invalid": TIP_RECIPIENTS_NOT_A_LIST},
    )
    base_amount_display = _display_amount(data_key="baseAmountDisplay")
    tip_amount_display = _display_amount(data_key="tipAmountDisplay")

    def __init__(self, *, max_invoice_sats: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_invoice_sats = max_invoice_sats
        self._amount_too_large = f"amount must be at most {max_invoice_sats} sats"

    def _code_of(self, message: str) -> ErrorCode | None:
        if message == self._amount_too_large:
            return ErrorCode.AMOUNT_TOO_LARGE
        return super()._code_of(message)

    @validates("amount")
    def _amount_within_limit(self, value: int, data_key: str) -> None:
        if value > self.max_invoice_sats:
            raise ValidationError(self._amount_too_large)

    # Runs even when single fields failed, so ``fields`` lists every broken rule at once.
    @validates_schema(pass_original=True, skip_on_field_errors=False)
    def _sale_rules(self, data: dict[str, Any], original_data: Any, **kwargs: Any) -> None:
        if not isinstance(original_data, Mapping):
            return
        errors: dict[str, list[str]] = {}
        _merchant_wallet_id(data, original_data, errors)
        base_and_tip = _base_and_tip(data, original_data, errors)
        recipients = _tip_recipients(data, original_data, errors)
        if base_and_tip is not None and recipients is not None and base_and_tip[1] > 0 and not recipients:
            errors["tipRecipients"] = [TIP_RECIPIENT_REQUIRED]
        if errors:
            raise ValidationError(errors)

    @post_load(pass_original=True)
    def _to_request(self, data: dict[str, Any], original_data: Any, **kwargs: Any) -> InvoiceRequest:
        errors: dict[str, list[str]] = {}
        wallet_id = _merchant_wallet_id(data, original_data, errors)
        base_and_tip = _base_and_tip(data, original_data, errors)
        recipients = _tip_recipients(data, original_data, errors)
        if wallet_id is None or base_and_tip is None or recipients is None:
            # Unreachable: _sale_rules has refused every body that leaves one of these unset.
            raise ValidationError(errors or "invalid request")
        base_sats, tip_sats = base_and_tip
        return InvoiceRequest(
            invoice_sats=data["amount"],
            base_sats=base_sats,
            tip_sats=tip_sats,
            merchant_wallet_id=wallet_id,
            merchant_api_key=data["api_key"],
            currency=data["currency"].upper(),
            memo=data["memo"] or "",
            display_currency=(data["display_currency"] or "BTC").upper(),
            tip_percent=data["tip_percent"],
            tip_recipients=recipients,
            base_amount_display=data["base_amount_display"],
            tip_amount_display=data["tip_amount_display"],
            client_tip_sats=data["tip_amount"],
        )


def _failed(key: str, data: Mapping[str, Any], attribute: str, original: Mapping[str, Any]) -> bool:
    """True when the body had ``key`` but its field did not load (its own error is reported)."""
    return key in original and attribute not in data


def _merchant_wallet_id(
    data: Mapping[str, Any], original: Mapping[str, Any], errors: dict[str, list[str]]
) -> str | None:
    if _failed("userWalletId", data, "user_wallet_id", original) or _failed(
        "walletId", data, "wallet_id", original
    ):
        return None
    user_wallet_id = (data.get("user_wallet_id") or "").strip()
    wallet_id = (data.get("wallet_id") or "").strip()
    if user_wallet_id and wallet_id and user_wallet_id != wallet_id:
        errors["walletId"] = [WALLET_IDS_DISAGREE]
        return None
    if not (user_wallet_id or wallet_id):
        errors["userWalletId"] = [WALLET_ID_REQUIRED]
        return None
    return user_wallet_id or wallet_id


def _base_and_tip(
    data: Mapping[str, Any], original: Mapping[str, Any], errors: dict[str, list[str]]
) -> tuple[int, int] | None:
    """(base, tip) with tip = amount - base; the client's tipAmount is only cross-checked."""
    if "amount" not in data:
        return None
    if _failed("baseAmount", data, "base_amount", original) or _failed(
        "tipAmount", data, "tip_amount", original
    ):
        return None
    amount: int = data["amount"]
    client_base: int | None = data.get("base_amount")
    client_tip: int | None = data.get("tip_amount")
    if client_base is not None:
        if client_base > amount:
            errors["baseAmount"] = [BASE_ABOVE_AMOUNT]
            return None
        base = client_base
    elif client_tip is not None:
        if client_tip > amount:
            errors["tipAmount"] = [TIP_ABOVE_AMOUNT]
            return None
        base = amount - client_tip
    else:
        base = amount
    tip = amount - base
    if client_tip is not None and abs(client_tip - tip) > 1:
        errors["tipAmount"] = [TIP_AMOUNT_MISMATCH]
        return None
    return base, tip


def _tip_recipients(
    data: Mapping[str, Any], original: Mapping[str, Any], errors: dict[str, list[str]]
) -> tuple[TipRecipient, ...] | None:
    """The recipients in the order given, or None when they cannot be told (errors recorded)."""
    if _failed("tipRecipients", data, "tip_recipients", original) or _failed(
        "tipRecipient", data, "tip_recipient", original
    ):
        return None
    listed: list[dict[str, Any]] = data.get("tip_recipients") or []
    single: str | None = data.get("tip_recipient")
    if not listed:
        return (TipRecipient(single, Fraction(1)),) if single else ()
    usernames = [entry["username"] for entry in listed]
    if len(set(usernames)) != len(usernames):
        errors["tipRecipients"] = [DUPLICATE_TIP_RECIPIENT]
        return None
    with_share = sum(entry["share"] is not None for entry in listed)
    if with_share not in (0, len(listed)):
        errors["tipRecipients"] = [PARTIAL_SHARES]
        return None
    if single and single not in usernames:
        errors["tipRecipient"] = [TIP_RECIPIENT_NOT_LISTED]
        return None
    return tuple(TipRecipient(entry["username"], entry["share"] or Fraction(1)) for entry in listed)


class ForwardWithTipsSchema(RequestSchema):
    """``POST /api/blink/forward-with-tips`` → ForwardWithTipsRequest."""

    payment_hash = PaymentHashField(data_key="paymentHash", required=True)
    total_amount = fields.Integer(
        data_key="totalAmount",
        strict=True,
        allow_none=True,
        load_default=None,
        validate=validate.Range(min=0),
    )
    memo = MemoField(allow_none=True, load_default=None)

    @post_load
    def _to_request(self, data: dict[str, Any], **kwargs: Any) -> ForwardWithTipsRequest:
        return ForwardWithTipsRequest(
            payment_hash=data["payment_hash"], client_total_sats=data["total_amount"], memo=data["memo"]
        )


class ForwardPaymentSchema(RequestSchema):
    """``POST /api/blink/forward-payment`` → ForwardPaymentRequest; amount/memo the page sends are ignored."""

    payment_hash = PaymentHashField(data_key="paymentHash", required=True)
    api_key = NonBlankString(
        data_key="userApiKey",
        required=True,
        validate=validate.Length(max=_MAX_API_KEY_CHARS, error="userApiKey is too long"),
        error_messages={"required": USER_API_KEY_REQUIRED, "null": USER_API_KEY_REQUIRED},
    )
    user_wallet_id = NonBlankString(
        data_key="userWalletId",
        required=True,
        strip=True,
        validate=validate.Length(max=_MAX_WALLET_ID_CHARS, error="userWalletId is too long"),
        error_messages={"required": USER_WALLET_ID_REQUIRED, "null": USER_WALLET_ID_REQUIRED},
    )

    @post_load
    def _to_request(self, data: dict[str, Any], **kwargs: Any) -> ForwardPaymentRequest:
        return ForwardPaymentRequest(
            payment_hash=data["payment_hash"],
            merchant_wallet_id=data["user_wallet_id"],
            merchant_api_key=data["api_key"],
        )


def _flatten_messages(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """marshmallow's nested error messages as ``{"tipRecipients.0.username": [...]}``."""
    flat: dict[str, list[str]] = {}
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            if key == "_schema" and prefix:
                path = prefix
            else:
                path = f"{prefix}.{key}" if prefix else str(key)
            for sub_path, texts in _flatten_messages(value, path).items():
                flat.setdefault(sub_path, []).extend(texts)
    elif isinstance(messages, list | tuple):
        for item in messages:
            for sub_path, texts in _flatten_messages(item, prefix).items():
                flat.setdefault(sub_path, []).extend(texts)
    else:
        flat.setdefault(prefix or "_schema", []).append(str(messages))
    return flat


# --- response schemas (the source of the OpenAPI document) -----------------------------------------
# They describe what service/api/presenters.py writes; ``validate(answer)`` finds any drift.


class TipLegSchema(Schema):
    username = fields.String(required=True)
    share = ShareField(allow_none=True, metadata={"description": "relative weight"})
    sats = fields.Integer(required=True)
    status = fields.String(
        required=True, metadata={"description": "planned|invoiced|sending|succeeded|failed"}
    )
    payment_hash = fields.String(data_key="paymentHash", allow_none=True)


class InvoiceSchema(Schema):
    payment_request = fields.String(data_key="paymentRequest", required=True)
    payment_hash = fields.String(data_key="paymentHash", required=True)
    satoshis = fields.Integer(required=True, metadata={"description": "invoice amount in sats"})
    amount = fields.Integer(required=True, metadata={"description": "the sale total in sats"})
    currency = fields.String(required=True)
    memo = fields.String(required=True)
    wallet_id = fields.String(data_key="walletId", required=True, metadata={"description": "the POS wallet"})
    user_wallet_id = fields.String(data_key="userWalletId", required=True)
    has_tip = fields.Boolean(data_key="hasTip", required=True)
    tip_amount = fields.Integer(data_key="tipAmount", required=True, metadata={"description": "tip in sats"})
    tip_recipient = fields.String(
        data_key="tipRecipient", allow_none=True, metadata={"description": "the first tip recipient, if any"}
    )
    tip_recipients = fields.List(fields.Nested(TipLegSchema), data_key="tipRecipients", required=True)
    expires_at = fields.DateTime(data_key="expiresAt", required=True)


class CreateInvoiceResponseSchema(Schema):
    success = fields.Boolean(required=True)
    invoice = fields.Nested(InvoiceSchema, required=True)


class TipResultSchema(Schema):
    success = fields.Boolean(required=True, metadata={"description": "every tip leg succeeded"})
    total_tip_amount = fields.Integer(data_key="totalTipAmount", required=True)
    recipients = fields.List(fields.Nested(TipLegSchema), required=True)


class TipSplittingSchema(Schema):
    recipient_count = fields.Integer(data_key="recipientCount", required=True)
    amounts = fields.List(fields.Integer(), required=True, metadata={"description": "sats per tip leg"})


class ForwardDetailsSchema(Schema):
    payment_hash = fields.String(data_key="paymentHash", required=True)
    total_amount = fields.Integer(
        data_key="totalAmount", required=True, metadata={"description": "invoice sats"}
    )
    forwarded_amount = fields.Integer(
        data_key="forwardedAmount", required=True, metadata={"description": "base sats for the merchant"}
    )
    user_wallet_id = fields.String(data_key="userWalletId", required=True)
    payment_status = fields.String(data_key="paymentStatus", required=True)
    invoice_hash = fields.String(
        data_key="invoiceHash", allow_none=True, metadata={"description": "the merchant's forwarding invoice"}
    )
    tip_result = fields.Nested(TipResultSchema, data_key="tipResult", allow_none=True)
    tip_splitting = fields.Nested(TipSplittingSchema, data_key="tipSplitting", allow_none=True)
    already_processed = fields.Boolean(data_key="alreadyProcessed", required=True)
    processed_at = fields.DateTime(data_key="processedAt", allow_none=True)


class ForwardResponseSchema(Schema):
    success = fields.Boolean(required=True)
    message = fields.String(required=True)
    details = fields.Nested(ForwardDetailsSchema, required=True)


class LegStatusSchema(Schema):
    kind = fields.String(required=True, metadata={"description": "base | tip"})
    recipient = fields.String(required=True, metadata={"description": "merchant wallet id or Blink username"})
    sats = fields.Integer(required=True)
    status = fields.String(
        required=True, metadata={"description": "planned|invoiced|sending|succeeded|failed"}
    )
    payment_hash = fields.String(data_key="paymentHash", allow_none=True)
    attempts = fields.Integer(required=True)
    last_error = fields.String(data_key="lastError", allow_none=True)
    next_attempt_at = fields.String(
        data_key="nextAttemptAt", allow_none=True, metadata={"description": "when a failed leg is retried"}
    )


class PaymentStatusSchema(Schema):
    payment_hash = fields.String(data_key="paymentHash", required=True)
    status = fields.String(
        required=True, metadata={"description": "pending|paid|forwarding|completed|expired|failed"}
    )
    invoice_sats = fields.Integer(data_key="invoiceSats", required=True)
    base_sats = fields.Integer(data_key="baseSats", required=True)
    tip_sats = fields.Integer(data_key="tipSats", required=True)
    tip_percent = fields.Float(data_key="tipPercent", allow_none=True)
    merchant_wallet_id = fields.String(data_key="merchantWalletId", required=True)
    display_currency = fields.String(data_key="displayCurrency", required=True)
    memo = fields.String(allow_none=True)
    created_at = fields.DateTime(data_key="createdAt", required=True)
    expires_at = fields.DateTime(data_key="expiresAt", required=True)
    paid_at = fields.DateTime(data_key="paidAt", allow_none=True)
    processed_at = fields.DateTime(data_key="processedAt", allow_none=True)
    last_error = fields.String(data_key="lastError", allow_none=True)
    legs = fields.List(fields.Nested(LegStatusSchema), required=True)


class ErrorResponseSchema(Schema):
    error = fields.String(required=True)
    code = fields.String(required=True)
    details = fields.Dict(required=True)


# --- entry points for the views -------------------------------------------------------------------


def parse_create_invoice(body: object, max_invoice_sats: int) -> InvoiceRequest:
    """The create-invoice body as an InvoiceRequest, or ValidationFailed."""
    return _create_invoice_schema(max_invoice_sats).parse(body)


def parse_forward_with_tips(body: object) -> ForwardWithTipsRequest:
    return _forward_with_tips_schema().parse(body)


def parse_forward_payment(body: object) -> ForwardPaymentRequest:
    return _forward_payment_schema().parse(body)


# Schemas are stateless once built (load keeps nothing between calls), so one of each serves all
# requests; built on first use rather than at import.
@functools.cache
def _create_invoice_schema(max_invoice_sats: int) -> CreateInvoiceSchema:
    return CreateInvoiceSchema(max_invoice_sats=max_invoice_sats)


@functools.cache
def _forward_with_tips_schema() -> ForwardWithTipsSchema:
    return ForwardWithTipsSchema()


@functools.cache
def _forward_payment_schema() -> ForwardPaymentSchema:
    return ForwardPaymentSchema()
