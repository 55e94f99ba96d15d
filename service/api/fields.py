"""The API's field types and the stable error codes their rules answer with.

Every message a rule can produce is registered with its code (``message``), so a failed load
tells its code by its messages. Messages never quote the input: an API key must not come back
in an error. A field's limits sit in its validators or metadata, where the OpenAPI document
reads them. ``ApiSchema`` is the base of every schema on the wire; ``shared_schema`` gives the
one instance of a schema that serves every request.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from typing import Any, TypeVar

from marshmallow import Schema, ValidationError, fields, validate

from service.domain.normalize import normalize_payment_hash, normalize_username
from service.payments.memos import MAX_MEMO_BYTES

PAYMENT_HASH_PATTERN = r"^\s*[0-9a-fA-F]{64}\s*$"
MAX_API_KEY_CHARS = 256
# Shares are relative weights; the bounds keep their exact arithmetic small (1e308 or a
# 4,300-digit integer would be carried through every split and echoed back).
MIN_SHARE = Fraction(1, 10**6)
MAX_SHARE = 10**6


class ErrorCode(StrEnum):
    """The codes of the 400s; when several rules fail, the first in this order names the error."""

    PAYMENT_HASH_REQUIRED = "payment_hash_required"
    INVALID_PAYMENT_HASH = "invalid_payment_hash"
    AMOUNT_REQUIRED = "amount_required"
    INVALID_AMOUNT = "invalid_amount"
    AMOUNT_TOO_LARGE = "amount_too_large"
    API_KEY_REQUIRED = "api_key_required"
    WALLET_ID_REQUIRED = "wallet_id_required"
    MERCHANT_DESTINATION_CONFLICT = "merchant_destination_conflict"
    INVALID_MERCHANT_API_KEY = "invalid_merchant_api_key"
    INVALID_BASE_AMOUNT = "invalid_base_amount"
    TIP_AMOUNT_MISMATCH = "tip_amount_mismatch"
    TIP_RECIPIENT_REQUIRED = "tip_recipient_required"
    INVALID_USERNAME = "invalid_username"
    INVALID_TIP_RECIPIENTS = "invalid_tip_recipients"
    SPLIT_PROFILE_WITH_TIP_RECIPIENTS = "split_profile_with_tip_recipients"
    UNKNOWN_SPLIT_PROFILE = "unknown_split_profile"
    INVALID_PROFILE_NAME = "invalid_profile_name"
    MEMO_TOO_LONG = "memo_too_long"
    INVALID_MEMO = "invalid_memo"
    UNSUPPORTED_CURRENCY = "unsupported_currency"
    INVALID_REQUEST = "invalid_request"  # no rule of its own matched: the first message names it


CODE_OF_MESSAGE: dict[str, ErrorCode] = {}
AnySchema = TypeVar("AnySchema", bound=Schema)


def message(code: ErrorCode, text: str) -> str:
    """``text`` as the message of a rule whose failure answers ``code``."""
    CODE_OF_MESSAGE[text] = code
    return text


INVALID_USERNAME = message(
    ErrorCode.INVALID_USERNAME,
    "not a valid Blink username (3 to 50 of a-z, 0-9 and _, not starting with 1, 3, bc1 or lnbc1)",
)
INVALID_SHARE = message(
    ErrorCode.INVALID_TIP_RECIPIENTS, f"share must be a number from {float(MIN_SHARE)} to {MAX_SHARE}"
)
MEMO_TOO_LONG = message(ErrorCode.MEMO_TOO_LONG, f"memo must be at most {MAX_MEMO_BYTES} bytes of UTF-8")
MEMO_HAS_NUL = message(ErrorCode.INVALID_MEMO, "memo must not contain NUL characters")
PAYMENT_HASH_REQUIRED = message(ErrorCode.PAYMENT_HASH_REQUIRED, "paymentHash is required")
INVALID_PAYMENT_HASH = message(
    ErrorCode.INVALID_PAYMENT_HASH, "paymentHash must be 64 hexadecimal characters"
)
MEMO_NOT_TEXT = "memo must be valid Unicode text"  # stays invalid_request


class Text(fields.String):
    """A string Redis, Postgres and Blink can carry: Unicode text (a JSON "\\ud800" escape is not)."""

    default_error_messages = {"not_text": "must be valid Unicode text"}

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as error:  # a lone surrogate
            raise self.make_error("not_text") from error
        return text


class NonBlankString(Text):
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


class ApiKeyField(NonBlankString):
    """A Blink API key: printable ASCII without spaces, as HTTP headers carry it to Blink."""

    def __init__(self, *, data_key: str, **kwargs: Any) -> None:
        text = message(
            ErrorCode.INVALID_MERCHANT_API_KEY, f"{data_key} must be printable ASCII without spaces"
        )
        shape = validate.Regexp(r"^[!-~]+$", error=text)
        length = validate.Length(max=MAX_API_KEY_CHARS, error=f"{data_key} is too long")
        super().__init__(data_key=data_key, validate=[shape, length], **kwargs)


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


# What marks a recipient as a Lightning Address or an LNURL rather than a Blink username: those
# are parsed, with the configured Blink domains, by the payment layer (service/payments/recipients.py).
_PAYOUT_ADDRESS_PREFIXES = ("lnurl1", "lnurlp://", "lightning:", "lnurl:")
MAX_RECIPIENT_CHARS = 2000
INVALID_RECIPIENT = message(
    ErrorCode.INVALID_USERNAME,
    "not a Blink username (3 to 50 of a-z, 0-9 and _, not starting with 1, 3, bc1 or lnbc1), "
    "a Lightning Address (name@domain) or an LNURL (lnurl1...)",
)
RECIPIENT_TOO_LONG = message(
    ErrorCode.INVALID_TIP_RECIPIENTS, f"a recipient must be at most {MAX_RECIPIENT_CHARS} characters"
)


class RecipientField(UsernameField):
    """A recipient (DESIGN §4): a Blink username, normalised as UsernameField does, or a Lightning
    Address (``name@domain``) or LNURL (``lnurl1...``, ``lnurlp://...``), kept as sent (stripped):
    whether an address is on a Blink domain, and its one spelling, is the payment layer's call."""

    # Where an address is accepted too, the message says so: "carol127.0.0.1:5000" lacks its "@".
    default_error_messages = {
        "too_long": RECIPIENT_TOO_LONG, "invalid": INVALID_RECIPIENT, "invalid_username": INVALID_RECIPIENT,
    }

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> str | None:
        text = fields.String._deserialize(self, value, attr, data, **kwargs)
        stripped = text.strip()
        if "@" in stripped or stripped.lower().startswith(_PAYOUT_ADDRESS_PREFIXES):
            if len(stripped) > MAX_RECIPIENT_CHARS:
                raise self.make_error("too_long")
            if not stripped.isprintable():
                raise self.make_error("invalid_username")
            return stripped
        return super()._deserialize(value, attr, data, **kwargs)


class NumberField(fields.Float):
    """A JSON number dumped as an int when whole (10, not 10.0), else as the nearest float."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> int | float | None:
        if value is None:
            return None
        if getattr(value, "denominator", None) == 1:
            return int(value)
        if isinstance(value, Decimal) and value == value.to_integral_value():
            return int(value)
        return float(value)


class DecimalNumber(fields.Decimal):
    """A decimal loaded exactly; dumped (its bounds in the document too) as a plain JSON number."""

    _serialize = NumberField._serialize


class ShareField(NumberField):
    """A weight given as a JSON number, loaded as an exact Fraction within MIN_SHARE..MAX_SHARE.

    Floats go through their shortest repr, so 33.3 is 333/10, not the binary approximation.
    """

    default_error_messages = {"invalid": INVALID_SHARE}

    def __init__(self, **kwargs: Any) -> None:
        bounds = {"minimum": float(MIN_SHARE), "maximum": MAX_SHARE}
        super().__init__(metadata={**bounds, **kwargs.pop("metadata", {})}, **kwargs)

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> Fraction:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.make_error("invalid")
        if isinstance(value, float) and not math.isfinite(value):
            raise self.make_error("invalid")
        # Bounded before the Fraction is made: a huge number goes no further than this comparison.
        if not MIN_SHARE <= value <= MAX_SHARE:
            raise self.make_error("invalid")
        return Fraction(value) if isinstance(value, int) else Fraction(repr(value))


class MemoField(Text):
    """Free text that Blink and Postgres can carry: valid Unicode without NUL, at most 639 bytes."""

    default_error_messages = {"too_long": MEMO_TOO_LONG, "not_text": MEMO_NOT_TEXT, "nul": MEMO_HAS_NUL}

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if len(text.encode("utf-8")) > MAX_MEMO_BYTES:
            raise self.make_error("too_long")
        if "\x00" in text:  # Postgres text cannot hold it
            raise self.make_error("nul")
        return text


class PaymentHashField(NonBlankString):
    """A payment hash: 64 hex digits (surrounding spaces tolerated), loaded lowercase."""

    default_error_messages = {
        "required": PAYMENT_HASH_REQUIRED,
        "null": PAYMENT_HASH_REQUIRED,
        "invalid": INVALID_PAYMENT_HASH,
        "bad_hash": INVALID_PAYMENT_HASH,
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(metadata={"pattern": PAYMENT_HASH_PATTERN, **kwargs.pop("metadata", {})}, **kwargs)

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> str:
        payment_hash = normalize_payment_hash(super()._deserialize(value, attr, data, **kwargs))
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


@functools.cache
def shared_schema(schema: type[AnySchema], **options: Any) -> AnySchema:
    """One instance per schema and options (a request's configured limit, an answer's exclusions),
    built on first use: a load or dump keeps nothing between calls, and building a schema with its
    nested ones cost a create-invoice about 6% of its CPU."""
    return schema(**options)


class ApiSchema(Schema):
    """A schema of the wire: a field's JSON name is its attribute name in camelCase
    (``payment_hash`` is ``paymentHash``) unless the field names its own ``data_key``."""

    def on_bind_field(self, field_name: str, field_obj: fields.Field) -> None:
        if field_obj.data_key is None:
            field_obj.data_key = json_name(field_name)


def json_name(attribute: str) -> str:
    """The camelCase JSON name of a snake_case attribute (``payment_hash`` is ``paymentHash``)."""
    first, *rest = attribute.split("_")
    return first + "".join(word[:1].upper() + word[1:] for word in rest)
