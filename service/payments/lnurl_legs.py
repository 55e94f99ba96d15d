"""Legs paid at a Lightning Address or LNURL-pay link (DESIGN §8): what differs from a Blink leg.

The Forwarder invoices, commits and then pays every leg the same way; for a leg paid outside Blink:
- the invoice comes from the recipient's LNURL server, for the leg minus the fee reserve, and is
  checked (payer.request_invoice) before the Forwarder commits it;
- a stored invoice that may already have been sent is first looked up by its payment hash
  (transactionsByPaymentHash on the POS wallet): a success is taken as paid, a payment in flight
  is waited for, and only a failed or never-sent invoice is paid (again);
- the routing fee is probed before paying and must fit in the reserve, or nothing is paid;
- the fee actually paid is read back from Blink, for the Forwarder's closing transaction;
- a stored invoice is given up only when it provably cannot be paid any more: expired by its own
  expiry AND no pending or successful payment of it at Blink.
Blink's lnAddressPaymentSend / lnurlPaymentSend are never used: each call fetches a new invoice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from service.blink import (
    BlinkClient,
    BlinkError,
    BlinkRejected,
    BlinkUnavailable,
    PaymentStatus,
    TxDirection,
    TxStatus,
    outcome_of,
    send_outcome,
)
from service.domain.model import Leg, LegInvoice
from service.lnurl import FeePolicy, InvoiceRejected, LnurlError, LnurlPayer, Recipient
from service.lnurl.errors import INVOICE_INVALID
from service.lnurl.invoices import invoice_expires_at

log = logging.getLogger(__name__)

# Blink's clock and ours may differ a little: an invoice counts as expired only this much later.
EXPIRY_GRACE_SECONDS = 60

# observer(outcome, reason, fee_sats): outcome "paid" | "failed" | "pending".
Observer = Callable[[str, str, int], None]


class LegPending(BlinkUnavailable):
    """The leg's payment is in flight (or paid and not yet listed): retried later, never re-invoiced."""

    default_code = "payment_pending"


class FeeAboveReserve(LnurlError):
    """Blink's routing fee for the invoice would take the payout above the leg: nothing is paid."""

    code = "fee_above_reserve"

    def __init__(self, message: str) -> None:
        super().__init__(message, reason="fee_above_reserve")


class LnurlLegs:
    """Thread-safe (its collaborators are); one per process, shared by the Forwarder's threads."""

    def __init__(
        self,
        blink: BlinkClient,
        payer: LnurlPayer,
        fees: FeePolicy,
        parse: Callable[[str], Recipient],
        *,
        pos_api_key: str,
        pos_wallet_id: str,
        clock: Callable[[], float] = time.time,
        observer: Observer | None = None,
    ) -> None:
        self._blink = blink
        self._payer = payer
        self._fees = fees
        self._parse = parse
        self._key = pos_api_key
        self._wallet = pos_wallet_id
        self._clock = clock
        self._observe = observer or (lambda outcome, reason, fee: None)

    def invoice(self, leg: Leg, memo: str) -> LegInvoice:
        """A checked invoice for the leg minus its fee reserve (not yet stored); LnurlError if none."""
        try:
            recipient = self._parse(leg.recipient)
            checked = self._payer.request_invoice(recipient, self._fees.invoice_sats_for_leg(leg.sats), memo)
        except LnurlError as exc:
            self._observe("failed", exc.reason, 0)
            raise
        except Exception as exc:  # noqa: BLE001 - nothing is stored or paid yet
            # Whatever a hostile answer makes a parser raise fails this leg only, never the
            # other legs of the sale.
            extra = {"leg_id": leg.id, "error_type": type(exc).__name__}
            log.warning("lnurl_invoice_unexpected_error", extra=extra)
            self._observe("failed", "unexpected", 0)
            raise InvoiceRejected(INVOICE_INVALID, "the recipient's answer could not be read") from None
        return LegInvoice(checked.payment_request, checked.payment_hash, checked.sats)

    def unpayable(self, leg: Leg) -> bool:
        """Whether the leg's stored invoice provably can no longer be paid: past its own expiry
        and Blink lists no pending or successful payment of it. False whenever unsure."""
        expires_at = invoice_expires_at(leg.payment_request or "")
        if expires_at is None or self._clock() < expires_at + EXPIRY_GRACE_SECONDS:
            return False
        try:
            outcome = send_outcome(self._transactions(leg))
        except BlinkError:
            return False
        return outcome in (None, TxStatus.FAILURE)

    def pay(self, leg: Leg, memo: str, *, maybe_sent: bool) -> int:
        """Pays the leg's stored invoice unless it is paid or in flight; returns the fee paid.

        maybe_sent: the invoice was stored before this attempt, so a payment of it may exist.
        Raises BlinkError (LegPending while in flight; outcome unknown after a timeout) or
        FeeAboveReserve; the caller records it on the leg and retries later."""
        try:
            fee = self._paid_fee(leg) if maybe_sent else None
            if fee is None:
                fee = self._probe_and_pay(leg, memo)
        except LegPending as exc:
            self._observe("pending", "pending", 0)
            log.info("lnurl_leg_pending", extra={"leg_id": leg.id, "error_code": exc.code})
            raise
        except LnurlError as exc:
            self._observe("failed", exc.reason, 0)
            raise
        except BlinkError as exc:
            self._observe("failed", f"blink_{outcome_of(exc)}", 0)
            raise
        self._observe("paid", "ok", fee)
        return fee

    def _probe_and_pay(self, leg: Leg, memo: str) -> int:
        received = self._received(leg)
        probed = self._blink.fee_probe(self._key, self._wallet, leg.payment_request)
        if not self._fees.fee_fits(leg.sats, received, probed):
            raise FeeAboveReserve(
                f"routing fee {probed} sats exceeds the reserve of {leg.sats - received} sats; retried later"
            )
        status = self._blink.pay_invoice(self._key, self._wallet, leg.payment_request, memo)
        if status is PaymentStatus.PENDING:
            raise LegPending("payment pending at Blink", operation="pay")
        fee = self._paid_fee(leg)
        if fee is not None:
            return fee
        if status is PaymentStatus.ALREADY_PAID:
            # Paid, but not from the POS wallet (a server handing out a spent invoice): nothing of
            # ours moved. The invoice is kept; it is replaced once expired with no payment of ours.
            raise BlinkRejected(
                "invoice_paid_elsewhere",
                "Blink says the recipient's invoice is already paid, and not by the POS wallet",
                operation="pay",
            )
        # Blink said SUCCESS but lists no settled payment yet: learn it by hash next time.
        raise LegPending("Blink answered SUCCESS and lists no settled payment yet", operation="pay")

    def _paid_fee(self, leg: Leg) -> int | None:
        """The fee of the invoice's successful payment; None when never sent or failed (payable
        again); LegPending while a payment of it is in flight."""
        transactions = self._transactions(leg)
        outcome = send_outcome(transactions)
        if outcome is TxStatus.PENDING:
            raise LegPending("a payment of the leg invoice is in flight at Blink", operation="pay")
        if outcome is not TxStatus.SUCCESS:
            return None
        fee = max(
            abs(t.fee_sats)
            for t in transactions
            if t.direction is TxDirection.SEND and t.status is TxStatus.SUCCESS
        )
        reserve = leg.sats - self._received(leg)
        if fee > reserve:
            # Blink charged more than it probed. The books may not show more leaving than the
            # leg (the schema refuses it), so the overshoot is logged for an operator instead.
            log.error(
                "lnurl_fee_above_reserve_paid",
                extra={"leg_id": leg.id, "fee_sats": fee, "reserve_sats": reserve},
            )
            fee = reserve
        return fee

    def _transactions(self, leg: Leg):
        return self._blink.transactions_by_payment_hash(self._key, self._wallet, leg.payment_hash)

    def _received(self, leg: Leg) -> int:
        # Stored with the invoice; the fee policy's figure only for a row from before that.
        if leg.received_sats is not None:
            return leg.received_sats
        return self._fees.invoice_sats_for_leg(leg.sats)
