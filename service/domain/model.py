"""The payment domain model shared by the store, the business rules and the API.

All amounts are integer satoshis. Dataclasses are frozen: a state change is a new value
returned by the store, never an in-place edit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from typing import NamedTuple


class SplitStatus(StrEnum):
    PENDING = "pending"
    PAID = "paid"
    FORWARDING = "forwarding"
    COMPLETED = "completed"
    EXPIRED = "expired"
    FAILED = "failed"


class LegStatus(StrEnum):
    PLANNED = "planned"
    INVOICED = "invoiced"
    SENDING = "sending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class LegKind(StrEnum):
    BASE = "base"
    TIP = "tip"


class Payout(StrEnum):
    """How a leg reaches its recipient (DESIGN §8)."""

    BLINK = "blink"  # an invoice on the recipient's Blink wallet, paid inside Blink, no fee
    LNURL = "lnurl"  # an invoice from the recipient's LNURL-pay server, paid over Lightning


@dataclass(frozen=True)
class TipRecipient:
    """A recipient with a positive weight; shares are relative, not percentages.

    username is the normalised recipient: a Blink username, a Lightning Address or an LNURL.
    """

    username: str
    share: Fraction = Fraction(1)

    def to_json(self) -> dict[str, str]:
        # The share is serialised as a string so "1/3" survives a JSON round trip exactly.
        return {"username": self.username, "share": str(self.share)}

    @classmethod
    def from_json(cls, data: dict) -> TipRecipient:
        return cls(username=str(data["username"]), share=parse_share(data.get("share", 1)))


def parse_share(value: object) -> Fraction:
    """A share given as int, float, decimal string or "a/b"; floats go through str to stay exact."""
    if isinstance(value, Fraction):
        return value
    if isinstance(value, bool):
        raise ValueError("share must be a number")
    return Fraction(str(value).strip())


@dataclass(frozen=True)
class PlannedLeg:
    """One outgoing payment as planned at invoice creation.

    recipient is the merchant wallet id for BASE and the Blink username for TIP; for a leg paid
    by LNURL (either kind) it is the normalised Lightning Address or LNURL.
    """

    kind: LegKind
    recipient: str
    sats: int
    position: int
    # The BTC wallet the create-invoice check resolved (the merchant wallet for BASE), so the
    # payout goes where the check looked.
    recipient_wallet_id: str | None = None
    payout: Payout = Payout.BLINK


@dataclass(frozen=True)
class SaleTerms:
    """What a sale is, as create-invoice made it; a NewSplit and a stored Split both carry it.

    A merchant settling to a Lightning Address has no wallet id and no key: exactly one of
    merchant_wallet_id and merchant_payout_address is set.
    """

    payment_hash: str
    payment_request: str
    invoice_sats: int
    base_sats: int
    tip_sats: int
    tip_percent: Decimal | None
    merchant_wallet_id: str | None
    merchant_key_fingerprint: str | None
    tip_recipients: tuple[TipRecipient, ...]
    display_currency: str
    base_amount_display: Decimal | None
    tip_amount_display: Decimal | None
    memo: str | None
    environment: str
    expires_at: datetime
    client_total_sats: int | None = field(default=None, kw_only=True)
    merchant_payout_address: str | None = field(default=None, kw_only=True)


@dataclass(frozen=True)
class NewSplit(SaleTerms):
    """What create-invoice hands to the store: the merchant's key only as its fingerprint (HMAC)."""

    legs: tuple[PlannedLeg, ...]


class LegInvoice(NamedTuple):
    """A leg's invoice as it is committed before it is paid. received_sats: what the recipient's
    invoice is for when it is less than the leg (an LNURL leg keeps its fee reserve back)."""

    payment_request: str
    payment_hash: str
    received_sats: int | None = None


@dataclass(frozen=True)
class Leg:
    id: int
    split_id: int
    kind: LegKind
    recipient: str
    recipient_wallet_id: str | None
    sats: int
    position: int
    status: LegStatus
    payment_request: str | None
    payment_hash: str | None
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None
    paid_at: datetime | None
    payout: Payout = Payout.BLINK
    # What the recipient's invoice is for, and the routing fee paid; both known once succeeded.
    received_sats: int | None = None
    fee_sats: int | None = None


@dataclass(frozen=True)
class Split(SaleTerms):
    """A POS invoice and its planned payouts.

    The merchant is known by its wallet and its key's fingerprint; no key is kept (DESIGN §9).
    id is None for a record read from the legacy file (it is not in Postgres).
    """

    id: int | None
    status: SplitStatus
    created_at: datetime
    paid_at: datetime | None
    processed_at: datetime | None
    last_error: str | None
    claimed_by: str | None
    claimed_at: datetime | None
    legs: tuple[Leg, ...] = ()

    @property
    def has_tip(self) -> bool:
        return self.tip_sats > 0
