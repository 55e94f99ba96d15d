"""Validated requests, as the API views hand them to the business layer (no Flask, no marshmallow)."""

from dataclasses import dataclass, field
from decimal import Decimal

from service.domain.model import TipRecipient


@dataclass(frozen=True)
class InvoiceRequest:
    """A create-invoice body that passed every rule. tip_sats = invoice_sats - base_sats, always.

    The merchant is either a Blink wallet with the key that reads it, or (no key at all) the
    Lightning Address or LNURL in merchant_payout_address, as sent.
    """

    invoice_sats: int
    base_sats: int
    tip_sats: int
    merchant_wallet_id: str | None
    merchant_api_key: str | None = field(repr=False)
    currency: str = "BTC"  # what the POS page called the sale; the invoice itself is always BTC
    memo: str = ""
    display_currency: str = "BTC"
    tip_percent: Decimal | None = None
    tip_recipients: tuple[TipRecipient, ...] = ()
    base_amount_display: Decimal | None = None
    tip_amount_display: Decimal | None = None
    client_tip_sats: int | None = None  # recorded for audit; never used to pay anything
    split_profile_id: str | None = None  # the view copies its recipients into tip_recipients
    merchant_payout_address: str | None = None

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
