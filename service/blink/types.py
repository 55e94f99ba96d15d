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


class TxDirection(StrEnum):
    SEND = "SEND"
    RECEIVE = "RECEIVE"


class TxStatus(StrEnum):
    SUCCESS = "SUCCESS"
    PENDING = "PENDING"
    FAILURE = "FAILURE"


@dataclass(frozen=True)
class Transaction:
    """One of a wallet's transactions for a payment hash (transactionsByPaymentHash)."""

    id: str
    direction: TxDirection
    status: TxStatus
    settlement_sats: int  # signed: a send is minus its amount and fee
    fee_sats: int


def send_outcome(transactions: list[Transaction]) -> TxStatus | None:
    """What became of a payment the wallet sent: SUCCESS if any attempt succeeded, else PENDING if
    one may still settle, else FAILURE; None when the wallet never sent it (Blink may list several
    attempts for one sent payment)."""
    statuses = {t.status for t in transactions if t.direction is TxDirection.SEND}
    for status in (TxStatus.SUCCESS, TxStatus.PENDING, TxStatus.FAILURE):
        if status in statuses:
            return status
    return None
