"""The exactly-once forwarding engine (DESIGN §3).

A paid POS invoice is split into legs (the base to the merchant, one per tip recipient). For
each unpaid leg the engine creates the leg's invoice once, commits it, and only then pays it
from the POS wallet. A retry (another call, the worker, another instance, a crash restart)
pays the *stored* invoice again, which Blink answers ALREADY_PAID, so no leg is paid twice.

Only the holder of the split's claim (a lease in Postgres) pays legs; the Redis lock is a
cheap fast path that turns most duplicate calls away before they touch Postgres.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from service.blink import (
    BlinkClient,
    BlinkError,
    BlinkRejected,
    BlinkTimeout,
    BlinkUnavailable,
    InvoiceStatus,
    PaymentStatus,
    outcome_of,
)
from service.domain.clock import Clock, utc_now
from service.domain.errors import (
    DependencyDown,
    ForwardingIncomplete,
    ForwardingInProgress,
    InvoiceNotPaid,
    SplitNotCompletable,
    SplitNotFound,
    UpstreamRejected,
    UpstreamUnavailable,
)
from service.domain.model import Leg, LegInvoice, LegKind, LegStatus, Payout, Split, SplitStatus
from service.lnurl import InvoiceRejected, LnurlError
from service.lnurl.errors import INVOICE_REUSED
from service.payments import memos
from service.payments.lnurl_legs import LegPending, LnurlLegs
from service.payments.parallel import run_each
from service.payments.ports import ForwardingLocks, ForwardingStore

log = logging.getLogger(__name__)

# Why a leg was not paid on this attempt: Blink's answer, or the recipient's LNURL server's.
LegError = BlinkError | LnurlError

# Statuses whose payment must be confirmed at Blink before anything moves. An expired split
# is asked too: a customer may pay in the last second, and a paid invoice is never left behind.
_ASK_BLINK = {SplitStatus.PENDING, SplitStatus.EXPIRED}

MAX_BACKOFF = timedelta(hours=1)


def retry_delay(attempts: int) -> timedelta:
    """Exponential backoff for a failed leg: 1 s, 2 s, 4 s, ... capped at one hour."""
    exponent = max(attempts - 1, 0)
    return min(timedelta(seconds=2 ** min(exponent, 20)), MAX_BACKOFF)


@dataclass(frozen=True)
class ForwardSettings:
    pos_api_key: str
    pos_wallet_id: str
    lease_seconds: int
    leg_max_attempts: int
    instance_id: str
    # Legs of one split paid side by side (FORWARD_LEG_CONCURRENCY).
    leg_concurrency: int = 8


@dataclass(frozen=True)
class ForwardOutcome:
    split: Split
    already_processed: bool


class Forwarder:
    """Forwards one paid split; safe to call any number of times from anywhere."""

    def __init__(
        self,
        store: ForwardingStore,
        blink: BlinkClient,
        locks: ForwardingLocks,
        settings: ForwardSettings,
        *,
        clock: Clock = utc_now,
        observer: Callable[[str, str], None] | None = None,
        invoice_status: Callable[[str], InvoiceStatus] | None = None,
        lnurl: LnurlLegs | None = None,
    ) -> None:
        self._store = store
        self._blink = blink
        # Legs paid at a Lightning Address / LNURL (None: such legs fail, retryably).
        self._lnurl = lnurl
        # Whether a POS invoice is paid: Blink's answer, possibly shared between callers.
        self._invoice_status = invoice_status or blink.invoice_status
        self._locks = locks
        self._settings = settings
        self._now = clock
        self._observe = observer or (lambda event, outcome: None)

    # -- public -----------------------------------------------------------------------------

    def forward(
        self, payment_hash: str, *, source: str, client_total_sats: int | None = None
    ) -> ForwardOutcome:
        """Verify payment, claim, pay every unpaid leg, complete. Raises a PaymentError subclass.

        client_total_sats is what the caller believes the sale was; it is only recorded (a
        mismatch is logged), since payouts come from the stored invoice.
        """
        split = self._store.get_fresh(payment_hash)
        if split is None:
            raise SplitNotFound("No invoice with this payment hash was created here.")
        if client_total_sats is not None and client_total_sats != split.invoice_sats:
            log.warning(
                "client_total_ignored",
                extra={
                    "payment_hash": payment_hash,
                    "client_total_sats": client_total_sats,
                    "invoice_sats": split.invoice_sats,
                    "source": source,
                },
            )
        if split.status == SplitStatus.COMPLETED:
            return ForwardOutcome(split, already_processed=True)
        # A split a verified webhook (or the worker) already marked paid needs no Blink call.
        unconfirmed = split.status in _ASK_BLINK
        if unconfirmed:
            self._confirm_paid(split)

        token = self._locks.acquire(payment_hash)
        if token is False:
            raise ForwardingInProgress("This payment is being forwarded right now.")
        try:
            return self._claim_and_forward(payment_hash, paid_source=source if unconfirmed else None)
        finally:
            if token:
                self._locks.release(payment_hash, token)

    # -- steps ------------------------------------------------------------------------------

    def _confirm_paid(self, split: Split) -> None:
        try:
            status = self._invoice_status(split.payment_hash)
        except BlinkUnavailable as exc:
            raise UpstreamUnavailable(
                "Blink did not answer whether the invoice is paid; try again.",
                timed_out=isinstance(exc, BlinkTimeout),
                details={"retryable": True},
            ) from exc
        except BlinkError as exc:
            # Refused (or our key refused): nothing moved, and asking again later is harmless.
            raise UpstreamRejected(
                f"Blink refused to say whether the invoice is paid: {exc.message}",
                details={"retryable": True},
            ) from exc
        if status != InvoiceStatus.PAID:
            raise InvoiceNotPaid(
                "The invoice has not been paid yet; nothing was forwarded.",
                details={"paymentStatus": str(status)},
            )

    def _claim_and_forward(self, payment_hash: str, paid_source: str | None) -> ForwardOutcome:
        """Claims the split (marking it paid in the same statement when Blink just said so)."""
        owner = f"{self._settings.instance_id}:{uuid.uuid4().hex[:12]}"
        lease = self._settings.lease_seconds
        if paid_source is None:
            split = self._store.claim(payment_hash, owner, lease)
        else:
            split = self._store.mark_paid_and_claim(payment_hash, paid_source, owner, lease)
        if split is None:
            current = self._store.get_fresh(payment_hash)
            if current is not None and current.status == SplitStatus.COMPLETED:
                return ForwardOutcome(current, already_processed=True)
            raise ForwardingInProgress("This payment is being forwarded right now.")
        return self.forward_claimed(split, owner)

    def forward_claimed(self, split: Split, owner: str) -> ForwardOutcome:
        """Pay the unpaid legs of a split the caller claimed as `owner` (forward(), or the worker's
        batch claim), then complete it. Raises like forward()."""
        payment_hash = split.payment_hash
        legs = sorted(split.legs, key=lambda leg: leg.position)
        unpaid = [leg for leg in legs if leg.status != LegStatus.SUCCEEDED]
        due = [leg for leg in unpaid if self._is_due(leg)]
        # A failed leg waits out its backoff, however often the POS page asks: retries stay
        # spaced and its attempt budget is not burnt in seconds.
        waiting = [_retry_scheduled(leg) for leg in unpaid if not self._is_due(leg)]
        try:
            paid, errors = self._pay_legs(split, due)
            fees = {leg_id: fee for leg_id, fee in paid.items() if fee is not None}
            if paid and (errors or waiting):
                self._store.mark_legs_succeeded(list(paid), fees)
        except BaseException:
            # Anything unexpected (Postgres gone, a bug): hand the split back for the worker.
            self._release_quietly(payment_hash, owner, "forwarding interrupted")
            raise

        last_error = errors[-1] if errors else (waiting[0] if waiting else None)
        if last_error is None:
            try:
                # The paid legs are marked and the split completed in one transaction.
                completed = self._store.complete(payment_hash, owner, list(paid), fees)
            except SplitNotCompletable as exc:
                # Our lease ran out mid-way and another holder took the split: completing is
                # its job now (every leg we paid is recorded and will not be paid again).
                self._release_quietly(payment_hash, owner, "not completable by this holder")
                raise ForwardingInProgress("This payment is being forwarded right now.") from exc
            self._observe("forward", "completed")
            return ForwardOutcome(completed, already_processed=False)

        return self._give_back(payment_hash, owner, last_error)

    def _is_due(self, leg: Leg) -> bool:
        if leg.status != LegStatus.FAILED or leg.next_attempt_at is None:
            return True
        return leg.next_attempt_at <= self._now()

    def _pay_legs(
        self, split: Split, legs: list[Leg]
    ) -> tuple[dict[int, int | None], list[LegError]]:
        """Every due leg invoiced once and then paid, the legs side by side; one slow or failing
        leg delays or fails only itself. Returns the legs paid, {leg id: routing fee, None for a
        Blink leg} (not yet marked succeeded: the caller does that in its closing transaction),
        and the errors of the rest (already recorded on their legs)."""
        width = self._settings.leg_concurrency
        legs = [self._without_unpayable_invoice(leg) for leg in legs]
        # Stored before this attempt: a payment of it may exist (an LNURL leg asks Blink first).
        maybe_sent = {leg.id for leg in legs if leg.payment_request is not None}
        fresh = [leg for leg in legs if leg.payment_request is None]
        made = run_each(lambda leg: self._new_invoice(split, leg), fresh, width)
        errors: list[LegError] = []
        invoices: dict[int, LegInvoice] = {}
        for leg, invoice in zip(fresh, made, strict=True):
            if isinstance(invoice, LegInvoice):
                invoices[leg.id] = invoice
            else:
                self._record_leg_failure(leg, invoice, leg.attempts + 1)
                errors.append(invoice)
        for leg in self._reusing_legs(fresh, invoices):
            del invoices[leg.id]
            reused = InvoiceRejected(
                INVOICE_REUSED, "the recipient's server handed out an invoice stored for another payout"
            )
            self._record_leg_failure(leg, reused, leg.attempts + 1)
            errors.append(reused)
        ready = [leg.id for leg in legs if leg.payment_request is not None or leg.id in invoices]
        # One transaction commits the new invoices and marks the legs sending before any is
        # paid; a leg another holder invoiced first comes back with that (stored) invoice.
        sending = self._store.start_sending(split.payment_hash, invoices, ready) if ready else []
        # A leg that came back with another holder's invoice, not ours, may have been sent too.
        maybe_sent |= {
            leg.id
            for leg in sending
            if leg.id in invoices and invoices[leg.id].payment_hash != leg.payment_hash
        }
        sent = run_each(lambda leg: self._send_leg(split, leg, leg.id in maybe_sent), sending, width)
        paid: dict[int, int | None] = {}
        for leg, (error, fee) in zip(sending, sent, strict=True):
            if error is None:
                paid[leg.id] = fee
            else:
                errors.append(error)
        return paid, errors

    def _reusing_legs(self, fresh: list[Leg], invoices: dict[int, LegInvoice]) -> list[Leg]:
        """The LNURL legs whose new invoice another leg (of any sale) already stores, or an earlier
        leg of this batch got too: paying it once must never close two legs (some servers hand
        out one invoice per amount for a while). Blink makes each Blink leg's invoice anew."""
        lnurl = [leg for leg in fresh if leg.id in invoices and leg.payout == Payout.LNURL]
        if not lnurl:
            return []
        holders = self._store.legs_holding_invoices({invoices[leg.id].payment_hash for leg in lnurl})
        reusing, taken = [], set()
        for leg in lnurl:
            payment_hash = invoices[leg.id].payment_hash
            if holders.get(payment_hash, set()) - {leg.id} or payment_hash in taken:
                reusing.append(leg)
            taken.add(payment_hash)
        return reusing

    def _without_unpayable_invoice(self, leg: Leg) -> Leg:
        """An LNURL leg whose stored invoice provably cannot be paid any more, without it: this
        attempt fetches a new one. Any other leg as it is."""
        if leg.payout != Payout.LNURL or leg.payment_request is None or self._lnurl is None:
            return leg
        if not self._lnurl.unpayable(leg):
            return leg
        discarded = self._store.discard_expired_leg_invoice(leg.id, leg.payment_hash)
        if discarded is None:
            return leg
        log.info("leg_invoice_expired", extra={"leg_id": leg.id})
        return discarded

    def _new_invoice(self, split: Split, leg: Leg) -> LegInvoice | LegError:
        """The leg's invoice from its recipient (not yet stored)."""
        memo = leg_memo(split, leg)
        try:
            if leg.payout == Payout.LNURL:
                return self._lnurl_legs().invoice(leg, memo)
            # Every Blink leg, the base too, is invoiced on its recipient's wallet without the
            # recipient's key (lnInvoiceCreateOnBehalfOfRecipient): no merchant key is kept.
            # A merchant paid at a Blink-domain address has no merchant wallet: its base leg
            # carries the wallet the address resolved to.
            if leg.kind == LegKind.BASE:
                wallet_id = split.merchant_wallet_id or leg.recipient_wallet_id
            else:
                wallet_id = leg.recipient_wallet_id or self._blink.default_btc_wallet(leg.recipient)
            invoice = self._blink.create_invoice_for_recipient(wallet_id, leg.sats, memo)
        except (BlinkError, LnurlError) as exc:
            return exc
        return LegInvoice(invoice.payment_request, invoice.payment_hash)

    def _send_leg(self, split: Split, leg: Leg, maybe_sent: bool) -> tuple[LegError | None, int | None]:
        """Pays a leg's stored invoice (the leg is marked sending): (None, fee) when it is paid
        (fee None for a Blink leg), else (the error, recorded on the leg, None)."""
        if leg.payout == Payout.LNURL:
            return self._send_lnurl_leg(split, leg, maybe_sent)
        try:
            status = self._blink.pay_invoice(
                self._settings.pos_api_key,
                self._settings.pos_wallet_id,
                leg.payment_request,
                leg_memo(split, leg),
            )
        except BlinkError as exc:
            self._record_leg_failure(leg, exc, leg.attempts)
            if isinstance(exc, BlinkRejected):
                self._discard_if_expired(leg)
            return exc, None

        if status in (PaymentStatus.SUCCESS, PaymentStatus.ALREADY_PAID):
            self._observe("leg", "paid")
            return None, None
        # PENDING: Blink holds the payment in flight. Paying the same invoice later is safe, so
        # the leg is retried like a failure and will answer SUCCESS or ALREADY_PAID then.
        pending = LegPending("payment pending at Blink", operation="pay")
        self._record_leg_failure(leg, pending, leg.attempts)
        return pending, None

    def _send_lnurl_leg(self, split: Split, leg: Leg, maybe_sent: bool) -> tuple[LegError | None, int | None]:
        """An LNURL leg: paid only if Blink shows no payment of its invoice yet and the probed
        fee fits its reserve; an expired invoice is replaced on a later attempt, never here."""
        try:
            fee = self._lnurl_legs().pay(leg, leg_memo(split, leg), maybe_sent=maybe_sent)
        except (BlinkError, LnurlError) as exc:
            self._record_leg_failure(leg, exc, leg.attempts)
            return exc, None
        self._observe("leg", "paid")
        return None, fee

    def _lnurl_legs(self) -> LnurlLegs:
        """The LNURL leg payer; a Forwarder built without one fails such legs, retryably."""
        if self._lnurl is None:
            raise LnurlError("Lightning Address payouts are not configured", reason="not_configured")
        return self._lnurl

    def _discard_if_expired(self, leg: Leg) -> None:
        """A Blink leg invoice can expire while the leg waits for retries (or an operator): then,
        and only then, it is safe to drop it and invoice the leg again (Blink knows its own
        invoices; an LNURL leg's is checked by _without_unpayable_invoice instead)."""
        try:
            expired = self._blink.invoice_status(leg.payment_hash) == InvoiceStatus.EXPIRED
        except BlinkError:
            return  # unknown: keep the invoice; the next attempt asks again
        if expired:
            self._store.discard_expired_leg_invoice(leg.id, leg.payment_hash)
            log.info("leg_invoice_expired", extra={"leg_id": leg.id})

    def _record_leg_failure(self, leg: Leg, error: LegError, attempts: int) -> None:
        # Out of attempts: nothing retries it until an operator does, so it has no next attempt.
        exhausted = attempts >= self._settings.leg_max_attempts
        next_attempt = None if exhausted else self._now() + retry_delay(attempts)
        self._store.mark_leg_failed(leg.id, _describe(error), next_attempt)
        self._observe("leg", "failed")
        self._observe("leg_failure", _failure_reason(error))
        log.warning(
            "leg_failed",
            extra={"leg_id": leg.id, "kind": str(leg.kind), "error_code": error.code, "attempts": attempts},
        )

    def _give_back(self, payment_hash: str, owner: str, error: LegError) -> ForwardOutcome:
        split = self._store.get_fresh(payment_hash)
        exhausted = [
            leg
            for leg in split.legs
            if leg.status != LegStatus.SUCCEEDED and leg.attempts >= self._settings.leg_max_attempts
        ]
        if exhausted:
            self._store.fail(
                payment_hash, f"{len(exhausted)} leg(s) out of attempts: {_describe(error)}", owner=owner
            )
            self._observe("forward", "failed")
        else:
            self._store.release(payment_hash, owner, _describe(error))
            self._observe("forward", "incomplete")
        split = self._store.get_fresh(payment_hash)
        raise ForwardingIncomplete(
            "Some payouts could not be sent yet; they will be retried automatically.",
            timed_out=isinstance(error, BlinkTimeout),
            legs=split.legs,
            details={"retryable": not exhausted, "paymentHash": payment_hash},
        )

    def _release_quietly(self, payment_hash: str, owner: str, reason: str) -> None:
        try:
            self._store.release(payment_hash, owner, reason)
        except DependencyDown:
            # Postgres is gone (the error that brought us here, most likely): an outage, not a
            # bug, so no stack trace; the lease runs out by itself and another holder goes on.
            log.warning("release_failed", extra={"payment_hash": payment_hash, "reason": "database"})
        except Exception:  # noqa: BLE001 - the original error matters more; the lease expires anyway
            log.exception("release_failed", extra={"payment_hash": payment_hash})


def leg_memo(split: Split, leg: Leg) -> str:
    """The memo on a leg's invoice: what the sale was for the merchant, which tip part for a tipee."""
    tip_legs = [other for other in sorted(split.legs, key=lambda x: x.position) if other.kind == LegKind.TIP]
    if leg.kind == LegKind.BASE:
        tip_text = None
        if split.tip_sats > 0:
            tip_text = memos.describe_tip(
                split.tip_sats, split.display_currency, split.tip_amount_display, split.tip_percent
            )
        return memos.merchant_memo(split.memo, tip_text, [other.recipient for other in tip_legs])
    index = next(i for i, other in enumerate(tip_legs, start=1) if other.id == leg.id)
    display = memos.tip_leg_display_amount(
        leg.sats, split.tip_sats, split.display_currency, split.tip_amount_display
    )
    return memos.tip_memo(index, len(tip_legs), display, leg.sats)


def _retry_scheduled(leg: Leg) -> BlinkError:
    when = leg.next_attempt_at.isoformat() if leg.next_attempt_at else "soon"
    return BlinkUnavailable(f"retry scheduled at {when}", code="retry_scheduled", operation="pay")


def _failure_reason(error: LegError) -> str:
    """A bounded metric label: pending, lnurl (the recipient's server; details in the LNURL
    metrics), or Blink's outcome."""
    if error.code == LegPending.default_code:
        return "pending"  # a leg Blink holds in flight is retried like a failure, but is no error
    if isinstance(error, LnurlError):
        return "lnurl"
    return outcome_of(error)


def _describe(error: LegError) -> str:
    return f"{error.code}: {error.message}"[:500]
