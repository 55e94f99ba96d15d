"""Typed results of the Blink client. Amounts are integer satoshis."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class PaymentStatus(StrEnum):
    """Outcome of lnInvoicePaymentSend that moved (or will move) no more than the invoice once."""

    SUCCESS = "SUCCESS"
    PENDING = "PENDING"
    ALREADY_PAID = "ALREADY_PAID"


class InvoiceStatus(StrEnum):
    PENDING = "PENDING"
    PAID = "PAID"
    EXPIRED = "EXPIRED"


class WalletCurrency(StrEnum):
    BTC = "BTC"
    USD = "USD"


@dataclass(frozen=True)
class Invoice:
    payment_request: str
    payment_hash: str
    satoshis: int


@dataclass(frozen=True)
class Wallet:
    id: str
    # A plain string so that a currency Blink adds later does not break wallet listing;
    # compare with WalletCurrency members (a StrEnum equals its value).
    currency: str
