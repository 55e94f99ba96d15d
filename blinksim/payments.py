"""How money moves in the simulator's bank: customer payments, payments between Blink wallets, external
payments (to an invoice the simulator did not issue, with a routing fee) and payments held PENDING.

Every move happens under the bank's one lock and is recorded in the ledger: the payer is debited
`sats + fee_sats` unless the payment FAILED (then refunded), the target is credited `sats` once it is
SUCCESS. A payment hash is paid at most once: paying it again answers ALREADY_PAID, or PENDING while a
held payment of it is in flight, and moves nothing.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import uuid

import bolt11

from blinksim.model import (
    BTC,
    PENDING,
    SUCCESS,
    Hold,
    Invoice,
    Payment,
    SimError,
    Transfer,
    Wallet,
)

_MAINNET = "bc"


@dataclasses.dataclass(frozen=True)
class HoldSpec:
    """Hold a payment PENDING, then settle it to `outcome` after `after_seconds` (None: on a control call)."""

    outcome: str
    after_seconds: float | None = None


@dataclasses.dataclass(frozen=True)
class ExternalInvoice:
    payment_hash: str
    sats: int
    expires_at: float


def decode_external(payment_request: str) -> ExternalInvoice:
    """The parts of a foreign BOLT11 invoice a payment needs; SimError when Blink would refuse it."""
    try:
        decoded = bolt11.decode(payment_request.strip())
    except Exception as exc:  # noqa: BLE001 (bolt11 raises many unrelated types on bad input)
        raise SimError("INVALID_INPUT", "Invalid payment request") from exc
    if decoded.currency != _MAINNET:
        raise SimError("INVALID_INPUT", "Invoice is not for Bitcoin mainnet")
    if not decoded.amount_msat:
        raise SimError("INVALID_INPUT", "Invoice has no amount: use lnNoAmountInvoicePaymentSend")
    return ExternalInvoice(
        payment_hash=decoded.payment_hash,
        sats=math.ceil(decoded.amount_msat / 1000),
        expires_at=decoded.date + decoded.expiry,
    )


class PaymentsMixin:
    """SimState's payment operations (the bank's records live in SimState)."""

    # customer payments and payments between Blink wallets -----------------------------------------

    def pay_invoice(
        self,
        invoice: Invoice,
        payer_wallet_id: str | None,
        memo: str | None = None,
        hold: HoldSpec | None = None,
    ) -> Payment:
        """Pay an invoice the simulator issued, from a wallet or from outside money (`payer_wallet_id` None).

        Either the invoice becomes PAID and exactly its amount moves, or (held) the payer is debited and
        the payment is PENDING, or nothing changes. Raises SimError for a payment Blink answers FAILURE.
        """
        with self._lock:
            now = self.clock()
            if invoice.paid_at is not None:
                return Payment("ALREADY_PAID", invoice=invoice)
            if invoice.in_flight is not None:
                return Payment(PENDING, invoice=invoice)
            if now >= invoice.expires_at:
                raise SimError("INVOICE_EXPIRED", "Invoice is expired")
            if payer_wallet_id is None:
                self._wallets[invoice.wallet_id].balance += invoice.sats
                transfer = self._record(
                    None,
                    invoice.wallet_id,
                    invoice.sats,
                    invoice.payment_hash,
                    invoice.memo,
                    now,
                    payment_request=invoice.payment_request,
                )
            else:
                if payer_wallet_id == invoice.wallet_id:
                    raise SimError("CANT_PAY_SELF", "User tried to pay themselves")
                payer = self._payer(payer_wallet_id, invoice.sats)
                payer.balance -= invoice.sats
                status = PENDING if hold else SUCCESS
                if status == SUCCESS:
                    self._wallets[invoice.wallet_id].balance += invoice.sats
                transfer = self._record(
                    payer.id,
                    invoice.wallet_id,
                    invoice.sats,
                    invoice.payment_hash,
                    memo or invoice.memo,
                    now,
                    status=status,
                    payment_request=invoice.payment_request,
                )
            if transfer.status == PENDING:
                invoice.in_flight = transfer.id
                self._hold(transfer, hold)
            else:
                invoice.paid_at = now
        if transfer.status == SUCCESS and self.on_settled is not None:
            self.on_settled(invoice, transfer)
        return Payment(transfer.status, transfer, invoice)

    def _payer(self, wallet_id: str, debit: int) -> Wallet:
        payer = self._wallets[wallet_id]
        if payer.currency != BTC:
            raise SimError("INVALID_INPUT", "Wallet is not a BTC wallet")
        if payer.balance < debit:
            raise SimError(
                "INSUFFICIENT_BALANCE", f"Payment amount '{debit}' sats exceeds balance '{payer.balance}'"
            )
        return payer

    # external payments ------------------------------------------------------------------------------

    def fee_probe(self, payment_request: str) -> int:
        """The routing fee of paying `payment_request`: 0 inside Blink, the fee policy's outside."""
        if self.invoice_by_request(payment_request) is not None:
            return 0
        return self.fees.fee(decode_external(payment_request).sats)

    def pay_external(
        self,
        payer_wallet_id: str,
        payment_request: str,
        memo: str | None = None,
        hold: HoldSpec | None = None,
    ) -> Payment:
        """Pay an invoice issued outside the simulator: the payer is debited amount + routing fee, and a
        foreign LNURL wallet that issued the invoice is credited the amount."""
        external = decode_external(payment_request)
        with self._lock:
            now = self.clock()
            previous = self._outgoing.get(external.payment_hash)
            if previous is not None:
                status = self._ledger[self._ledger_index[previous]].status
                if status == SUCCESS:
                    return Payment("ALREADY_PAID")
                if status == PENDING:
                    return Payment(PENDING)
            if now >= external.expires_at:
                raise SimError("INVOICE_EXPIRED", "Invoice is expired")
            fee = self.fees.fee(external.sats)
            payer = self._payer(payer_wallet_id, external.sats + fee)
            payer.balance -= external.sats + fee
            transfer = self._record(
                payer.id,
                None,
                external.sats,
                external.payment_hash,
                memo,
                now,
                fee_sats=fee,
                status=PENDING if hold else SUCCESS,
                payment_request=payment_request.strip(),
            )
            self._outgoing[external.payment_hash] = transfer.id
            if transfer.status == PENDING:
                self._hold(transfer, hold)
            else:
                self._deliver_outside(transfer)
        return Payment(transfer.status, transfer)

    def _deliver_outside(self, transfer: Transfer) -> None:
        invoice = self._foreign_invoices_by_hash.get(transfer.payment_hash)
        if invoice is not None:
            self._foreign_wallets[invoice.wallet_name].balance += transfer.sats

    # held payments ------------------------------------------------------------------------------------

    def _hold(self, transfer: Transfer, hold: HoldSpec) -> None:
        settle_at = None if hold.after_seconds is None else self.clock() + hold.after_seconds
        self._holds[transfer.id] = Hold(transfer.id, hold.outcome, settle_at)
        if hold.after_seconds is not None:
            timer = threading.Timer(hold.after_seconds, self.settle, (transfer.id,))
            timer.daemon = True
            timer.start()

    def settle(self, transfer_id: str, outcome: str | None = None) -> Transfer | None:
        """Settle a held payment to `outcome` (default: the outcome planned when it was held).

        SUCCESS credits the target (and marks an internal invoice PAID); FAILURE refunds the payer and
        leaves the invoice payable. None when no payment with that id is held (already settled).
        """
        invoice = None
        with self._lock:
            hold = self._holds.pop(transfer_id, None)
            if hold is None:
                return None
            outcome = outcome or hold.outcome
            index = self._ledger_index[transfer_id]
            transfer = dataclasses.replace(self._ledger[index], status=outcome)
            self._ledger[index] = transfer
            if transfer.to_wallet_id is not None:
                invoice = self._invoices_by_hash[transfer.payment_hash]
                invoice.in_flight = None
            if outcome == SUCCESS:
                if invoice is not None:
                    self._wallets[transfer.to_wallet_id].balance += transfer.sats
                    invoice.paid_at = self.clock()
                else:
                    self._deliver_outside(transfer)
            else:
                self._wallets[transfer.from_wallet_id].balance += transfer.sats + transfer.fee_sats
        if outcome == SUCCESS and invoice is not None and self.on_settled is not None:
            self.on_settled(invoice, transfer)
        return transfer

    def held_transfer_id(self, payment_hash: str) -> str | None:
        with self._lock:
            for hold in self._holds.values():
                if self._ledger[self._ledger_index[hold.transfer_id]].payment_hash == payment_hash:
                    return hold.transfer_id
        return None

    # ledger primitives (called under the lock) --------------------------------------------------------

    def _credit_from_outside(
        self, wallet_id: str, sats: int, payment_hash: str | None, memo: str, now: float
    ) -> Transfer:
        self._wallets[wallet_id].balance += sats
        return self._record(None, wallet_id, sats, payment_hash, memo, now)

    def _record(
        self,
        source: str | None,
        target: str | None,
        sats: int,
        payment_hash: str | None,
        memo: str | None,
        now: float,
        *,
        fee_sats: int = 0,
        status: str = SUCCESS,
        payment_request: str | None = None,
    ) -> Transfer:
        transfer = Transfer(
            id=uuid.uuid4().hex[:24],
            payment_hash=payment_hash,
            from_wallet_id=source,
            to_wallet_id=target,
            sats=sats,
            memo=memo or "",
            at=now,
            fee_sats=fee_sats,
            status=status,
            payment_request=payment_request,
        )
        self._ledger_index[transfer.id] = len(self._ledger)
        self._ledger.append(transfer)
        return transfer
