"""The check every invoice from an LNURL server passes before it is stored, let alone paid.

It decodes as BOLT11 with a valid signature; it is for Blink's network (mainnet); its amount
equals the requested millisatoshis exactly (an amountless invoice would let the server choose
what we pay); it expires comfortably later than now. A description hash that does not match the
pay request's metadata is only logged: LUD-06 dropped that requirement (lnurl/luds#234).
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass

import bolt11
from bolt11.exceptions import Bolt11Exception

from service.lnurl import errors
from service.lnurl.errors import InvoiceRejected

log = logging.getLogger(__name__)

MAINNET = "bc"  # the currency part of an `lnbc` prefix; Blink runs on mainnet
DEFAULT_MIN_SECONDS_LEFT = 30
# What a malformed string can make the decoder raise (bech32, bit-stream, signature recovery).
_DECODE_ERRORS = (Bolt11Exception, ValueError, TypeError, IndexError, KeyError, AttributeError)


@dataclass(frozen=True)
class CheckedInvoice:
    payment_request: str
    payment_hash: str  # 64 lowercase hex
    amount_msat: int
    expires_at: int  # unix seconds

    @property
    def sats(self) -> int:
        return self.amount_msat // 1000


def check_invoice(
    payment_request: str,
    *,
    amount_msat: int,
    metadata: str | None = None,
    min_seconds_left: int = DEFAULT_MIN_SECONDS_LEFT,
    network: str = MAINNET,
    now: float | None = None,
) -> CheckedInvoice:
    """The invoice, checked; InvoiceRejected (code ``invoice_*``) naming the first broken rule."""
    try:
        decoded = bolt11.decode(payment_request)
    except _DECODE_ERRORS:
        raise InvoiceRejected(
            errors.INVOICE_INVALID, "the recipient's invoice is not a validly signed BOLT11 invoice"
        ) from None
    if decoded.currency != network:
        raise InvoiceRejected(
            errors.INVOICE_WRONG_NETWORK,
            f"the recipient's invoice is for network {decoded.currency!r}, not {network!r}",
        )
    if decoded.amount_msat is None:
        raise InvoiceRejected(errors.INVOICE_AMOUNTLESS, "the recipient's invoice has no amount")
    if int(decoded.amount_msat) != amount_msat:
        raise InvoiceRejected(
            errors.INVOICE_AMOUNT_MISMATCH,
            f"asked the recipient's server for {amount_msat} msat, its invoice is for "
            f"{int(decoded.amount_msat)} msat",
        )
    expires_at = decoded.date + decoded.expiry
    current = time.time() if now is None else now
    if expires_at - current < min_seconds_left:
        raise InvoiceRejected(
            errors.INVOICE_EXPIRED,
            f"the recipient's invoice expires in {int(expires_at - current)} s "
            f"(at least {min_seconds_left} s needed)",
        )
    if metadata is not None:
        _log_description_mismatch(decoded, metadata)
    return CheckedInvoice(payment_request, decoded.payment_hash.lower(), amount_msat, expires_at)


def invoice_expires_at(payment_request: str) -> int | None:
    """When a stored invoice expires (unix seconds), from its own fields; None if it does not decode.

    Blink's invoice status only knows Blink's own invoices, so an external one's expiry is read
    here, locally."""
    try:
        decoded = bolt11.decode(payment_request)
    except _DECODE_ERRORS:
        return None
    return int(decoded.date + decoded.expiry)


def _log_description_mismatch(decoded: bolt11.Bolt11, metadata: str) -> None:
    expected = hashlib.sha256(metadata.encode("utf-8")).hexdigest()
    found = decoded.description_hash
    if found is None or found.lower() != expected:
        log.info(
            "lnurl_description_hash_mismatch",
            extra={"payment_hash": decoded.payment_hash, "has_description_hash": found is not None},
        )
