"""Request schemas of the HTTP API (DESIGN §4): what the POS page may send, and what it means.

``schema.parse(body)`` returns a dataclass from ``service.payments.inputs`` or raises
ValidationFailed (a 400) whose ``code`` is stable: clients branch on it. Every broken rule,
field or cross-field, leaves its message in ``details.fields``; the highest-ranked one
(the order of ``ErrorCode``) decides ``code`` and the human ``error`` text.

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
- A recipient is a Blink username (lowercased; surrounding spaces tolerated), a Lightning Address
  or an LNURL (kept as sent: the payment layer parses it with the configured Blink domains). The
  same spelling twice is refused; two spellings of one recipient (``alice`` and
  ``alice@blink.sv``) are merged by the payment layer, their shares summed.
- Display-only values (``tipPercent``, ``*Display``, ``displayCurrency``) are checked for shape
  but never used for money.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from fractions import Fraction
from typing import Any, ClassVar

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from service.api.fields import (
    CODE_OF_MESSAGE,
    MAX_RECIPIENT_CHARS,
    ApiKeyField,
    DecimalNumber,
    ErrorCode,
    MemoField,
    NonBlankString,
    PaymentHashField,
    RecipientField,
    ShareField,
    Text,
    WholeList,
    message,
)
from service.domain.errors import InvalidBaseAmount, TipAmountMismatch
from service.domain.model import TipRecipient
from service.errors import BadRequest
from service.payments.inputs import ForwardPaymentRequest, ForwardWithTipsRequest, InvoiceRequest
from service.payments.pricing import base_and_tip

MAX_TIP_RECIPIENTS = 10
SUPPORTED_CURRENCIES = ("BTC", "USD")
_MAX_WALLET_ID_CHARS = 128
_MAX_TIP_PERCENT = 1000
_MAX_DISPLAY_AMOUNT = 10**15

AMOUNT_REQUIRED = message(ErrorCode.AMOUNT_REQUIRED, "amount is required")
INVALID_AMOUNT = message(ErrorCode.INVALID_AMOUNT, "amount must be a positive whole number of sats")
API_KEY_REQUIRED = message(ErrorCode.API_KEY_REQUIRED, "apiKey is required")
USER_API_KEY_REQUIRED = message(ErrorCode.API_KEY_REQUIRED, "userApiKey is required")
WALLET_ID_REQUIRED = message(ErrorCode.WALLET_ID_REQUIRED, "userWalletId (or walletId) is required")
USER_WALLET_ID_REQUIRED = message(ErrorCode.WALLET_ID_REQUIRED, "userWalletId is required")
INVALID_BASE_AMOUNT = message(
    ErrorCode.INVALID_BASE_AMOUNT, "baseAmount must be a whole number of sats, at least 0"
)
INVALID_TIP_AMOUNT = message(
    ErrorCode.TIP_AMOUNT_MISMATCH, "tipAmount must be a whole number of sats, at least 0"
)
TIP_RECIPIENT_REQUIRED = message(
    ErrorCode.TIP_RECIPIENT_REQUIRED, "a sale with a tip needs tipRecipient or tipRecipients"
)
TIP_RECIPIENTS_NOT_A_LIST = message(
    ErrorCode.INVALID_TIP_RECIPIENTS, "tipRecipients must be a list of objects with a username and a share"
)
TIP_RECIPIENT_NOT_AN_OBJECT = message(
    ErrorCode.INVALID_TIP_RECIPIENTS, "each tip recipient must be an object with a username and a share"
)
TIP_RECIPIENT_USERNAME_MISSING = message(
    ErrorCode.INVALID_TIP_RECIPIENTS, "each tip recipient needs a username"
)
TOO_MANY_TIP_RECIPIENTS = message(
    ErrorCode.INVALID_TIP_RECIPIENTS, f"tipRecipients must list at most {MAX_TIP_RECIPIENTS} recipients"
)
DUPLICATE_TIP_RECIPIENT = message(ErrorCode.INVALID_TIP_RECIPIENTS, "a recipient is listed twice")
PARTIAL_SHARES = message(
    ErrorCode.INVALID_TIP_RECIPIENTS, "give a share to every tip recipient or to none (equal shares)"
)
TIP_RECIPIENT_NOT_LISTED = message(
    ErrorCode.INVALID_TIP_RECIPIENTS, "tipRecipient must be one of tipRecipients"
)
UNSUPPORTED_CURRENCY = message(
    ErrorCode.UNSUPPORTED_CURRENCY, f"currency must be one of {', '.join(SUPPORTED_CURRENCIES)}"
)
UNKNOWN_SPLIT_PROFILE = message(
    ErrorCode.UNKNOWN_SPLIT_PROFILE, "splitProfileId names no split profile made with this apiKey"
)
SPLIT_PROFILE_WITH_TIP_RECIPIENTS = message(
    ErrorCode.SPLIT_PROFILE_WITH_TIP_RECIPIENTS,
    "send either splitProfileId or tipRecipient(s): the profile decides the tip split",
)
UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
MERCHANT_DESTINATION_CONFLICT = message(
    ErrorCode.MERCHANT_DESTINATION_CONFLICT,
    "send either apiKey and userWalletId or merchantLightningAddress, not both",
)
PROFILE_NEEDS_API_KEY = message(
    ErrorCode.API_KEY_REQUIRED, "splitProfileId needs the apiKey of the merchant whose profile it is"
)
WALLET_IDS_DISAGREE = "userWalletId and walletId must be the same wallet"  # stays invalid_request
# The field each refusal of the sale arithmetic is about.
_FIELD_OF_PRICING_ERROR = {InvalidBaseAmount: "baseAmount", TipAmountMismatch: "tipAmount"}


class ValidationFailed(BadRequest):
    """A request broke a rule: a 400 with a stable code and every message by field path.

    ``fields`` maps a dotted field path (``tipRecipients.1.username``) to its messages.
    """

    def __init__(self, code: str, message: str, fields: dict[str, list[str]]) -> None:
        super().__init__(code, message, {"fields": fields})
        self.fields = fields


class RequestSchema(Schema):
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


class TipRecipientSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    error_messages: ClassVar[dict[str, str]] = {"type": TIP_RECIPIENT_NOT_AN_OBJECT}

    username = RecipientField(
        required=True,
        metadata={"description": "a Blink username, a Lightning Address (name@domain) or an LNURL"},
        error_messages={"required": TIP_RECIPIENT_USERNAME_MISSING, "null": TIP_RECIPIENT_USERNAME_MISSING},
    )
    share = ShareField(allow_none=True, load_default=None)


def _sats(data_key: str, invalid: str, **kwargs: Any) -> fields.Integer:
    return fields.Integer(
        data_key=data_key,
        strict=True,
        allow_none=True,
        load_default=None,
        validate=validate.Range(min=0, error=invalid),
        error_messages={"invalid": invalid},
        **kwargs,
    )


def _supported_currency(value: str) -> None:
    if value.upper() not in SUPPORTED_CURRENCIES:
        raise ValidationError(UNSUPPORTED_CURRENCY)


def _display_amount(data_key: str) -> DecimalNumber:
    return DecimalNumber(
        data_key=data_key, allow_none=True, load_default=None, validate=validate.Range(0, _MAX_DISPLAY_AMOUNT)
    )


_BLANK_MEANS_ABSENT = frozenset({"merchantLightningAddress", "splitProfileId"})


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
    api_key = ApiKeyField(
        data_key="apiKey",
        allow_none=True,
        load_default=None,
        error_messages={"required": API_KEY_REQUIRED},
        metadata={"description": "the merchant's Blink key (or merchantLightningAddress instead)"},
    )
    merchant_lightning_address = NonBlankString(
        data_key="merchantLightningAddress",
        strip=True,
        allow_none=True,
        load_default=None,
        validate=validate.Length(max=MAX_RECIPIENT_CHARS, error="merchantLightningAddress is too long"),
        metadata={
            "description": "instead of apiKey and userWalletId: the base is paid to this Lightning "
            "Address or LNURL (name@blink.sv: that Blink user)"
        },
    )
    user_wallet_id = Text(
        data_key="userWalletId",
        allow_none=True,
        load_default=None,
        validate=validate.Length(max=_MAX_WALLET_ID_CHARS, error="userWalletId is too long"),
    )
    wallet_id = Text(
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
    base_amount = _sats("baseAmount", INVALID_BASE_AMOUNT)
    tip_amount = _sats("tipAmount", INVALID_TIP_AMOUNT)
    tip_percent = DecimalNumber(
        data_key="tipPercent",
        allow_none=True,
        load_default=None,
        validate=validate.Range(0, _MAX_TIP_PERCENT),
    )
    tip_recipient = RecipientField(
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
    split_profile_id = Text(
        data_key="splitProfileId",
        allow_none=True,
        load_default=None,
        validate=validate.Regexp(UUID_PATTERN, error=UNKNOWN_SPLIT_PROFILE),
        error_messages={"invalid": UNKNOWN_SPLIT_PROFILE},
        metadata={"description": "a split profile of this merchant: its recipients are copied into the sale"},
    )
    base_amount_display = _display_amount("baseAmountDisplay")
    tip_amount_display = _display_amount("tipAmountDisplay")

    def __init__(self, *, max_invoice_sats: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        text = f"amount must be at most {max_invoice_sats} sats"
        self.limit("amount", max_invoice_sats, ErrorCode.AMOUNT_TOO_LARGE, text)

    def parse(self, body: object) -> Any:
        # A POS settings form posts an unset merchantLightningAddress or splitProfileId as "":
        # that is the field left out, not a second merchant destination or a profile.
        if isinstance(body, Mapping):
            body = {
                key: value
                for key, value in body.items()
                if not (key in _BLANK_MEANS_ABSENT and isinstance(value, str) and not value.strip())
            }
        return super().parse(body)

    def build(
        self, data: dict[str, Any], original: Mapping[str, Any], errors: dict[str, list[str]]
    ) -> InvoiceRequest | None:
        address = data.get("merchant_lightning_address")
        merchant_named = address is not None or _failed(
            "merchantLightningAddress", data, "merchant_lightning_address", original
        )
        wallet_id = None if merchant_named else _merchant_wallet_id(data, original, errors)
        _one_merchant_destination(merchant_named, data, original, errors)
        amounts = _base_and_tip(data, original, errors)
        recipients = _tip_recipients(data, original, errors)
        profile_id = data.get("split_profile_id")
        profile_named = bool(profile_id) or _failed("splitProfileId", data, "split_profile_id", original)
        if profile_named and (recipients or data.get("tip_recipient")):
            errors["splitProfileId"] = [SPLIT_PROFILE_WITH_TIP_RECIPIENTS]
        elif profile_named and merchant_named:
            errors["splitProfileId"] = [PROFILE_NEEDS_API_KEY]
        elif amounts is not None and recipients is not None and amounts[1] > 0 and not recipients:
            if not profile_named:
                errors["tipRecipients"] = [TIP_RECIPIENT_REQUIRED]
        if errors or (wallet_id or address) is None or amounts is None or recipients is None:
            return None
        return InvoiceRequest(
            invoice_sats=data["amount"],
            base_sats=amounts[0],
            tip_sats=amounts[1],
            merchant_wallet_id=wallet_id,
            merchant_api_key=data["api_key"],
            merchant_payout_address=address,
            currency=data["currency"].upper(),
            memo=data["memo"] or "",
            display_currency=(data["display_currency"] or "BTC").upper(),
            tip_percent=data["tip_percent"],
            tip_recipients=recipients,
            base_amount_display=data["base_amount_display"],
            tip_amount_display=data["tip_amount_display"],
            client_tip_sats=data["tip_amount"],
            split_profile_id=profile_id.lower() if profile_id else None,
        )


def _failed(key: str, data: Mapping[str, Any], attribute: str, original: Mapping[str, Any]) -> bool:
    """True when the body had ``key`` but its field did not load (its own error is reported)."""
    return key in original and attribute not in data


def _one_merchant_destination(
    merchant_named: bool, data: Mapping[str, Any], original: Mapping[str, Any], errors: dict[str, list[str]]
) -> None:
    """A Blink key and wallet, or a payout address: exactly one of the two."""
    if merchant_named and any(original.get(key) for key in ("apiKey", "userWalletId", "walletId")):
        errors["merchantLightningAddress"] = [MERCHANT_DESTINATION_CONFLICT]
    elif not merchant_named and not data.get("api_key") and not _failed("apiKey", data, "api_key", original):
        errors["apiKey"] = [API_KEY_REQUIRED]


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
    if "amount" not in data:
        return None
    if _failed("baseAmount", data, "base_amount", original) or _failed(
        "tipAmount", data, "tip_amount", original
    ):
        return None
    try:
        return base_and_tip(data["amount"], data.get("base_amount"), data.get("tip_amount"))
    except (InvalidBaseAmount, TipAmountMismatch) as refused:
        errors[_FIELD_OF_PRICING_ERROR[type(refused)]] = [message(ErrorCode(refused.code), refused.message)]
        return None


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
    recipients = recipient_list(listed, "tipRecipients", errors)
    if recipients is None:
        return None
    if single and single not in [recipient.username for recipient in recipients]:
        errors["tipRecipient"] = [TIP_RECIPIENT_NOT_LISTED]
        return None
    return recipients


def recipient_list(
    listed: list[dict[str, Any]], field: str, errors: dict[str, list[str]]
) -> tuple[TipRecipient, ...] | None:
    """Loaded TipRecipientSchema entries as recipients (create-invoice and split profiles): no
    username twice, and a share on every one or on none (equal shares)."""
    usernames = [entry["username"] for entry in listed]
    if len(set(usernames)) != len(usernames):
        errors[field] = [DUPLICATE_TIP_RECIPIENT]
        return None
    with_share = sum(entry["share"] is not None for entry in listed)
    if with_share not in (0, len(listed)):
        errors[field] = [PARTIAL_SHARES]
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

    payment_hash = PaymentHashField(data_key="paymentHash", required=True)
    api_key = ApiKeyField(
        data_key="userApiKey",
        required=True,
        error_messages={"required": USER_API_KEY_REQUIRED, "null": USER_API_KEY_REQUIRED},
    )
    user_wallet_id = NonBlankString(
        data_key="userWalletId",
        required=True,
        strip=True,
        validate=validate.Length(max=_MAX_WALLET_ID_CHARS, error="userWalletId is too long"),
        error_messages={"required": USER_WALLET_ID_REQUIRED, "null": USER_WALLET_ID_REQUIRED},
    )

    def build(self, data: dict[str, Any], original: Mapping[str, Any], errors: dict[str, list[str]]) -> Any:
        if errors:
            return None
        return ForwardPaymentRequest(data["payment_hash"], data["user_wallet_id"], data["api_key"])


class PaymentHashPathSchema(RequestSchema):
    """The ``<payment_hash>`` of a URL → its canonical form."""

    payment_hash = PaymentHashField(required=True, metadata={"description": "the invoice's payment hash"})

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


# Schemas keep nothing between loads, so one of each serves every request; built on first use.
@functools.cache
def create_invoice_schema(max_invoice_sats: int) -> CreateInvoiceSchema:
    return CreateInvoiceSchema(max_invoice_sats=max_invoice_sats)


@functools.cache
def forward_with_tips_schema(max_invoice_sats: int) -> ForwardWithTipsSchema:
    return ForwardWithTipsSchema(max_invoice_sats=max_invoice_sats)


@functools.cache
def forward_payment_schema() -> ForwardPaymentSchema:
    return ForwardPaymentSchema()


@functools.cache
def payment_hash_path_schema() -> PaymentHashPathSchema:
    return PaymentHashPathSchema()
