"""Sales with legs paid at a Lightning Address, made through the store, paid on the simulator, and
the checks the forwarding tests share (the books, the ledger, a foreign wallet's callbacks)."""

from __future__ import annotations

import secrets
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flask import Flask

from blinksim.control import SimControl
from service.domain.model import LegKind, NewSplit, Payout, PlannedLeg, Split, TipRecipient

SHOP = "shop@example.com"


@dataclass(frozen=True)
class PlannedPayout:
    kind: LegKind
    recipient: str  # a Lightning Address, or a Blink username (wallet_id set)
    sats: int
    wallet_id: str | None = None

    @property
    def payout(self) -> Payout:
        return Payout.BLINK if self.wallet_id else Payout.LNURL


def lnurl_wallet(sim: SimControl, **settings) -> dict:
    """A foreign wallet on the simulator with an LNURL-pay endpoint; `lightningAddress` is its address."""
    return sim.create_lnurl_wallet("ln_" + secrets.token_hex(5), **settings)


def base_to(address_or_wallet: dict | str, sats: int) -> PlannedPayout:
    if isinstance(address_or_wallet, dict):
        wallet_id = address_or_wallet["btcWalletId"]
        return PlannedPayout(LegKind.BASE, wallet_id, sats, wallet_id)
    return PlannedPayout(LegKind.BASE, address_or_wallet, sats)


def tip_to(recipient: dict | str, sats: int) -> PlannedPayout:
    if isinstance(recipient, dict):
        return PlannedPayout(LegKind.TIP, recipient["username"], sats, recipient["btcWalletId"])
    return PlannedPayout(LegKind.TIP, recipient, sats)


def paid_sale(app: Flask, sim: SimControl, pos_account: dict, payouts: list[PlannedPayout]) -> str:
    """A sale whose POS invoice the customer has paid, its legs as planned; returns its payment hash.

    A base leg to an address makes a merchant without a key (merchant_payout_address)."""
    services = app.extensions["blinkpos"]
    total = sum(p.sats for p in payouts)
    base = next((p for p in payouts if p.kind is LegKind.BASE), None)
    tip = total - (base.sats if base else 0)
    pos_key, pos_wallet = pos_account["apiKey"], pos_account["btcWalletId"]
    invoice = sim.create_invoice(pos_key, pos_wallet, total, "Coffee")["invoice"]
    merchant_wallet = base.wallet_id if base else None
    fingerprint = services.fingerprints.fingerprint("merchant-key")
    new = NewSplit(
        payment_hash=invoice["paymentHash"],
        payment_request=invoice["paymentRequest"],
        invoice_sats=total,
        base_sats=base.sats if base else 0,
        tip_sats=tip,
        tip_percent=None,
        merchant_wallet_id=merchant_wallet,
        merchant_key_fingerprint=fingerprint if merchant_wallet else None,
        # A tip-only sale still names its merchant (the schema wants one destination).
        merchant_payout_address=None if merchant_wallet else (base.recipient if base else SHOP),
        tip_recipients=tuple(TipRecipient(p.recipient) for p in payouts if p.kind is LegKind.TIP),
        legs=tuple(
            PlannedLeg(p.kind, p.recipient, p.sats, i, recipient_wallet_id=p.wallet_id, payout=p.payout)
            for i, p in enumerate(payouts)
        ),
        display_currency="BTC",
        base_amount_display=None,
        tip_amount_display=None,
        memo="Coffee",
        environment="test",
        expires_at=datetime.now(UTC) + timedelta(hours=1),
    )
    services.store.save(new)
    sim.pay(invoice["paymentHash"])
    return invoice["paymentHash"]


def forward(app: Flask, payment_hash: str):
    return app.extensions["blinkpos"].forwarder.forward(payment_hash, source="test")


def fresh(app: Flask, payment_hash: str) -> Split:
    return app.extensions["blinkpos"].store.get_fresh(payment_hash)


def payments_of(sim: SimControl, payment_hash: str | None) -> list[dict]:
    """The ledger's moves for a leg invoice (each attempt, with its status)."""
    return [entry for entry in sim.ledger() if payment_hash and entry["paymentHash"] == payment_hash]


def outgoing_from(sim: SimControl, wallet_id: str) -> Counter:
    """How many times each payment hash left `wallet_id` and settled."""
    return Counter(
        e["paymentHash"] for e in sim.ledger() if e["fromWalletId"] == wallet_id and e["status"] == "SUCCESS"
    )


def callbacks(sim: SimControl, wallet: dict) -> int:
    return sim.lnurl_wallet(wallet["name"])["callbacks"]


def assert_books_hold(split: Split) -> None:
    """What the POS wallet paid out for the sale, fees included, never exceeds what it brought in."""
    for leg in split.legs:
        if leg.received_sats is not None:
            assert leg.received_sats + (leg.fee_sats or 0) <= leg.sats, leg
    spent = sum((leg.received_sats or 0) + (leg.fee_sats or 0) for leg in split.legs)
    assert spent <= split.invoice_sats
