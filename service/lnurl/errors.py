"""Typed failures of paying a Lightning Address or LNURL-pay link.

``code`` is the stable snake_case code the API answers (DESIGN 4); ``reason`` is a finer label for
metrics and logs (why a recipient was unreachable, which invoice rule failed). Messages may quote
a remote server's ``reason`` text, cut short and stripped of control characters, never a secret.
"""

from __future__ import annotations

RECIPIENT_INVALID = "recipient_invalid"
RECIPIENT_UNREACHABLE = "recipient_unreachable"
RECIPIENT_AMOUNT_OUT_OF_RANGE = "recipient_amount_out_of_range"
INVOICE_INVALID = "invoice_invalid"
INVOICE_AMOUNT_MISMATCH = "invoice_amount_mismatch"
INVOICE_AMOUNTLESS = "invoice_amountless"
INVOICE_WRONG_NETWORK = "invoice_wrong_network"
INVOICE_EXPIRED = "invoice_expired"
INVOICE_REUSED = "invoice_reused"

_MAX_REMOTE_TEXT = 200


class LnurlError(Exception):
    """Base of every LNURL failure. Always worth retrying later at forward time: a server may
    come back, and a refused invoice is never stored, so the next attempt fetches a fresh one."""

    code = RECIPIENT_INVALID

    def __init__(self, message: str, *, reason: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return f"{self.message} ({self.code}/{self.reason})"


class RecipientInvalid(LnurlError):
    """Not a recipient we can pay: unparsable, not a payRequest, or refused by its server."""

    code = RECIPIENT_INVALID


class RecipientUnreachable(LnurlError):
    """The server could not be reached safely: DNS, network, timeout, size, redirect, private address."""

    code = RECIPIENT_UNREACHABLE


class AmountOutOfRange(LnurlError):
    code = RECIPIENT_AMOUNT_OUT_OF_RANGE

    def __init__(self, message: str, *, min_sats: int, max_sats: int) -> None:
        super().__init__(message, reason="amount_out_of_range")
        self.min_sats = min_sats
        self.max_sats = max_sats


class InvoiceRejected(LnurlError):
    """The invoice the server returned breaks a rule; it is never stored nor paid."""

    code = INVOICE_INVALID

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, reason=code, code=code)


def remote_text(value: object) -> str:
    """A remote server's free text made safe to show and log: printable, short."""
    text = value if isinstance(value, str) else ""
    cleaned = "".join(ch if ch.isprintable() else " " for ch in text).strip()
    return cleaned[:_MAX_REMOTE_TEXT] or "no reason given"
