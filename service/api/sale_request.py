"""The sale request: what the POS page may send to ``POST /api/blink/create-invoice``, and what it means.

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

from collections.abc import Mapping
from fractions import Fraction
from typing import Any, ClassVar

from marshmallow import EXCLUDE, ValidationError, fields, validate

from service.api import request_messages as msg
from service.api.fields import (
    MAX_RECIPIENT_CHARS,
    ApiKeyField,
    ApiSchema,
    DecimalNumber,
    ErrorCode,
    MemoField,
    NonBlankString,
    RecipientField,
    ShareField,
    Text,
    WholeList,
    json_name,
    message,
)
from service.api.request_schemas import MAX_WALLET_ID_CHARS, RequestSchema
from service.domain.errors import InvalidBaseAmount, TipAmountMismatch
from service.domain.model import TipRecipient
from service.payments.inputs import InvoiceRequest
from service.payments.pricing import base_and_tip

_MAX_TIP_PERCENT = 1000
_MAX_DISPLAY_AMOUNT = 10**15
UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
# The field each refusal of the sale arithmetic is about.
_FIELD_OF_PRICING_ERROR = {InvalidBaseAmount: "baseAmount", TipAmountMismatch: "tipAmount"}


class TipRecipientSchema(ApiSchema):
    class Meta:
        unknown = EXCLUDE

    error_messages: ClassVar[dict[str, str]] = {"type": msg.TIP_RECIPIENT_NOT_AN_OBJECT}

    username = RecipientField(
        required=True,
        metadata={"description": "a Blink username, a Lightning Address (name@domain) or an LNURL"},
        error_messages={
            "required": msg.TIP_RECIPIENT_USERNAME_MISSING,
            "null": msg.TIP_RECIPIENT_USERNAME_MISSING,
        },
    )
    share = ShareField(allow_none=True, load_default=None)


def _sats(invalid: str, **kwargs: Any) -> fields.Integer:
    return fields.Integer(
        strict=True,
        allow_none=True,
        load_default=None,
        validate=validate.Range(min=0, error=invalid),
        error_messages={"invalid": invalid},
        **kwargs,
    )


def _supported_currency(value: str) -> None:
    if value.upper() not in msg.SUPPORTED_CURRENCIES:
        raise ValidationError(msg.UNSUPPORTED_CURRENCY)


def _display_amount() -> DecimalNumber:
    return DecimalNumber(allow_none=True, load_default=None, validate=validate.Range(0, _MAX_DISPLAY_AMOUNT))


_BLANK_MEANS_ABSENT = frozenset({"merchantLightningAddress", "splitProfileId"})


class CreateInvoiceSchema(RequestSchema):
    """``POST /api/blink/create-invoice`` → InvoiceRequest. ``max_invoice_sats`` comes from Config."""

    amount = fields.Integer(
        required=True,
        strict=True,
        validate=validate.Range(min=1, error=msg.INVALID_AMOUNT),
        error_messages={
            "required": msg.AMOUNT_REQUIRED,
            "null": msg.AMOUNT_REQUIRED,
            "invalid": msg.INVALID_AMOUNT,
        },
    )
    currency = fields.String(
        load_default="BTC",
        validate=_supported_currency,
        error_messages={"invalid": msg.UNSUPPORTED_CURRENCY, "null": msg.UNSUPPORTED_CURRENCY},
    )
    memo = MemoField(allow_none=True, load_default="")
    api_key = ApiKeyField(
        data_key="apiKey",
        allow_none=True,
        load_default=None,
        error_messages={"required": msg.API_KEY_REQUIRED},
        metadata={"description": "the merchant's Blink key (or merchantLightningAddress instead)"},
    )
    merchant_lightning_address = NonBlankString(
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
        allow_none=True,
        load_default=None,
        validate=validate.Length(max=MAX_WALLET_ID_CHARS, error="userWalletId is too long"),
    )
    wallet_id = Text(
        allow_none=True,
        load_default=None,
        validate=validate.Length(max=MAX_WALLET_ID_CHARS, error="walletId is too long"),
    )
    display_currency = fields.String(
        allow_none=True,
        load_default=None,
        validate=validate.Regexp(r"^[A-Za-z0-9]{1,10}$", error="displayCurrency must be a currency code"),
    )
    base_amount = _sats(msg.INVALID_BASE_AMOUNT)
    tip_amount = _sats(msg.INVALID_TIP_AMOUNT)
    tip_percent = DecimalNumber(
        allow_none=True,
        load_default=None,
        validate=validate.Range(0, _MAX_TIP_PERCENT),
    )
    tip_recipient = RecipientField(allow_none=True, load_default=None, blank_is_none=True)
    tip_recipients = WholeList(
        fields.Nested(TipRecipientSchema),
        allow_none=True,
        load_default=None,
        validate=validate.Length(max=msg.MAX_TIP_RECIPIENTS, error=msg.TOO_MANY_TIP_RECIPIENTS),
        error_messages={"invalid": msg.TIP_RECIPIENTS_NOT_A_LIST},
    )
    split_profile_id = Text(
        allow_none=True,
        load_default=None,
        validate=validate.Regexp(UUID_PATTERN, error=msg.UNKNOWN_SPLIT_PROFILE),
        error_messages={"invalid": msg.UNKNOWN_SPLIT_PROFILE},
        metadata={"description": "a split profile of this merchant: its recipients are copied into the sale"},
    )
    base_amount_display = _display_amount()
    tip_amount_display = _display_amount()

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
        merchant_named = address is not None or _failed(data, original, "merchant_lightning_address")
        wallet_id = None if merchant_named else _merchant_wallet_id(data, original, errors)
        _one_merchant_destination(merchant_named, data, original, errors)
        amounts = _base_and_tip(data, original, errors)
        recipients = _tip_recipients(data, original, errors)
        profile_id = data.get("split_profile_id")
        profile_named = bool(profile_id) or _failed(data, original, "split_profile_id")
        if profile_named and (recipients or data.get("tip_recipient")):
            errors["splitProfileId"] = [msg.SPLIT_PROFILE_WITH_TIP_RECIPIENTS]
        elif profile_named and merchant_named:
            errors["splitProfileId"] = [msg.PROFILE_NEEDS_API_KEY]
        elif amounts is not None and recipients is not None and amounts[1] > 0 and not recipients:
            if not profile_named:
                errors["tipRecipients"] = [msg.TIP_RECIPIENT_REQUIRED]
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


def _failed(data: Mapping[str, Any], original: Mapping[str, Any], *attributes: str) -> bool:
    """True when the body had one of these fields but it did not load (its own error is reported)."""
    return any(json_name(attribute) in original and attribute not in data for attribute in attributes)


def _one_merchant_destination(
    merchant_named: bool, data: Mapping[str, Any], original: Mapping[str, Any], errors: dict[str, list[str]]
) -> None:
    """A Blink key and wallet, or a payout address: exactly one of the two."""
    if merchant_named and any(original.get(key) for key in ("apiKey", "userWalletId", "walletId")):
        errors["merchantLightningAddress"] = [msg.MERCHANT_DESTINATION_CONFLICT]
    elif not merchant_named and not data.get("api_key") and not _failed(data, original, "api_key"):
        errors["apiKey"] = [msg.API_KEY_REQUIRED]


def _merchant_wallet_id(
    data: Mapping[str, Any], original: Mapping[str, Any], errors: dict[str, list[str]]
) -> str | None:
    if _failed(data, original, "user_wallet_id", "wallet_id"):
        return None
    user_wallet_id = (data.get("user_wallet_id") or "").strip()
    wallet_id = (data.get("wallet_id") or "").strip()
    if user_wallet_id and wallet_id and user_wallet_id != wallet_id:
        errors["walletId"] = [msg.WALLET_IDS_DISAGREE]
        return None
    if not (user_wallet_id or wallet_id):
        errors["userWalletId"] = [msg.WALLET_ID_REQUIRED]
        return None
    return user_wallet_id or wallet_id


def _base_and_tip(
    data: Mapping[str, Any], original: Mapping[str, Any], errors: dict[str, list[str]]
) -> tuple[int, int] | None:
    if "amount" not in data:
        return None
    if _failed(data, original, "base_amount", "tip_amount"):
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
    if _failed(data, original, "tip_recipients", "tip_recipient"):
        return None
    listed: list[dict[str, Any]] = data.get("tip_recipients") or []
    single: str | None = data.get("tip_recipient")
    if not listed:
        return (TipRecipient(single, Fraction(1)),) if single else ()
    recipients = recipient_list(listed, "tipRecipients", errors)
    if recipients is None:
        return None
    if single and single not in [recipient.username for recipient in recipients]:
        errors["tipRecipient"] = [msg.TIP_RECIPIENT_NOT_LISTED]
        return None
    return recipients


def recipient_list(
    listed: list[dict[str, Any]], field: str, errors: dict[str, list[str]]
) -> tuple[TipRecipient, ...] | None:
    """Loaded TipRecipientSchema entries as recipients (create-invoice and split profiles): no
    username twice, and a share on every one or on none (equal shares)."""
    usernames = [entry["username"] for entry in listed]
    if len(set(usernames)) != len(usernames):
        errors[field] = [msg.DUPLICATE_TIP_RECIPIENT]
        return None
    with_share = sum(entry["share"] is not None for entry in listed)
    if with_share not in (0, len(listed)):
        errors[field] = [msg.PARTIAL_SHARES]
        return None
    return tuple(TipRecipient(entry["username"], entry["share"] or Fraction(1)) for entry in listed)
