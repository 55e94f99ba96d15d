"""Business-level failures of the payment rules, raised by the store and the payment layer alike.

They carry a stable snake_case ``code`` and a human message; the API layer decides the HTTP
status (service/api/payment_errors.py), so these modules never import Flask.
"""

from __future__ import annotations

from typing import Any


class DependencyDown(Exception):
    """A server the rules depend on (Postgres) cannot be reached: an outage to wait out, not a bug.
    The store's StoreUnavailable is one; the payment layer catches it without importing the store."""


class PaymentError(Exception):
    code = "payment_error"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class SplitNotFound(PaymentError):
    """No split with this payment hash is stored (or it carries no merchant key)."""

    code = "split_not_found"


class SplitNotCompletable(PaymentError):
    """complete() was refused: a leg is not settled, or the caller does not hold the lease."""

    code = "split_not_completable"


class InvoiceNotPaid(PaymentError):
    code = "invoice_not_paid"


class ForwardingInProgress(PaymentError):
    code = "forwarding_in_progress"


class MerchantMismatch(PaymentError):
    code = "merchant_mismatch"


class MerchantKeyNotApplicable(PaymentError):
    """The sale's merchant settles to a Lightning Address and has no key to prove (forward-payment)."""

    code = "merchant_key_not_applicable"


class MerchantWalletMismatch(PaymentError):
    code = "merchant_wallet_mismatch"


class InvalidMerchantKey(PaymentError):
    code = "invalid_merchant_api_key"


class MerchantKeyCannotRead(PaymentError):
    """The key is Blink's but lacks the READ scope, so the wallet's owner cannot be checked."""

    code = "merchant_key_cannot_read"


class UnknownTipRecipient(PaymentError):
    code = "unknown_tip_recipient"


class TipRecipientIsPosWallet(PaymentError):
    code = "tip_recipient_is_pos_wallet"


class _MayTimeOut(PaymentError):
    """A failure that ended at Blink; timed_out tells a timeout from a refusal or an outage."""

    def __init__(self, message: str, *, timed_out: bool, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, details=details)
        self.timed_out = timed_out


class ForwardingIncomplete(_MayTimeOut):
    """Some legs are still unpaid after this attempt; they stay retryable. ``legs``: their states now."""

    code = "forwarding_incomplete"

    def __init__(
        self, message: str, *, timed_out: bool, legs: tuple = (), details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message, timed_out=timed_out, details=details)
        self.legs = legs


class UpstreamUnavailable(_MayTimeOut):
    """Blink could not answer a question the rules need answered (e.g. is the invoice paid?)."""

    code = "blink_unavailable"


class UpstreamRejected(PaymentError):
    code = "blink_rejected"


class InvalidBaseAmount(PaymentError):
    code = "invalid_base_amount"


class TipAmountMismatch(PaymentError):
    code = "tip_amount_mismatch"


class RecipientRefused(PaymentError):
    """A recipient that cannot be paid this sale's share: its code says why (recipient_invalid,
    recipient_unreachable, recipient_amount_out_of_range); details.recipient names it."""

    code = "recipient_invalid"

    def __init__(self, code: str, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, details=details)
        self.code = code
