"""Validated requests, as the API views hand them to the business layer (no Flask, no marshmallow).

Also the one rule for Blink usernames, which both request parsing and the payment rules use,
and the one rule for a payment hash as a client sends it (a JSON field or a URL segment).
"""

import re
from dataclasses import dataclass, field
from decimal import Decimal

from service.payments.model import TipRecipient

# Blink's Username scalar: 3-50 of [0-9a-z_], case-insensitive, and not shaped like an
# on-chain address or a BOLT11 invoice (Blink enforces this server-side only).
_USERNAME_PATTERN = re.compile(r"[0-9a-z_]{3,50}")
_FORBIDDEN_USERNAME_PREFIXES = ("1", "3", "bc1", "lnbc1")
# The old POS page let a merchant type a Lightning address; the Blink one names the same user.
_BLINK_ADDRESS_SUFFIX = "@blink.sv"
_HEX_DIGITS = frozenset("0123456789abcdef")


def normalize_username(raw: str) -> str | None:
    """The canonical (lowercase) Blink username for ``raw``, or None if Blink would refuse it.

    Surrounding spaces and a trailing ``@blink.sv`` are tolerated.
    """
    username = raw.strip().lower()
    username = username.removesuffix(_BLINK_ADDRESS_SUFFIX)
    if not _USERNAME_PATTERN.fullmatch(username) or username.startswith(_FORBIDDEN_USERNAME_PREFIXES):
        return None
    return username


def normalize_payment_hash(raw: str) -> str | None:
    """The canonical (lowercase) payment hash for ``raw``, or None unless it is 64 hex digits.

    Surrounding spaces are tolerated.
    """
    payment_hash = raw.strip().lower()
    if len(payment_hash) != 64 or not set(payment_hash) <= _HEX_DIGITS:
        return None
    return payment_hash


@dataclass(frozen=True)
class InvoiceRequest:
    """A create-invoice body that passed every rule. tip_sats = invoice_sats - base_sats, always."""

    invoice_sats: int
    base_sats: int
    tip_sats: int
    merchant_wallet_id: str
    merchant_api_key: str = field(repr=False)
    currency: str = "BTC"  # what the POS page called the sale; the invoice itself is always BTC
    memo: str = ""
    display_currency: str = "BTC"
    tip_percent: Decimal | None = None
    tip_recipients: tuple[TipRecipient, ...] = ()
    base_amount_display: Decimal | None = None
    tip_amount_display: Decimal | None = None
    client_tip_sats: int | None = None  # recorded for audit; never used to pay anything

    @property
    def has_tip(self) -> bool:
        return self.tip_sats > 0


@dataclass(frozen=True)
class ForwardWithTipsRequest:
    payment_hash: str  # 64 lowercase hex
    client_total_sats: int | None = None  # recorded only: payouts come from the stored invoice
    memo: str | None = None


@dataclass(frozen=True)
class ForwardPaymentRequest:
    """The fallback forward: the caller must prove it is the merchant that created the split."""

    payment_hash: str  # 64 lowercase hex
    merchant_wallet_id: str
    merchant_api_key: str = field(repr=False)
