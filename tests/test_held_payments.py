"""Payouts Blink holds PENDING (the simulator's pending_then_* faults), driven through the service.

A held leg is neither paid nor failed: it must be resolved by its payment hash, by paying the
same stored invoice again (Blink answers PENDING while it is held, ALREADY_PAID once it settled,
and takes the payment afresh once it failed), never by invoicing the leg a second time while the
first invoice may still settle. The retries run on a clock the test moves, not on sleeps.
"""

from __future__ import annotations

from blinksim.control import SimControl
from tests.fixtures.clocks import (
    MovableClock,
    create_sale,
    settled_transfers_by_hash,
    transfers_by_hash,
    worker_with_clock,
)


def _held_sale(make_sale_app, sim: SimControl, merchant: dict, tipee, outcome: str):
    """A paid 2-leg sale whose forward got both payouts held PENDING by Blink."""
    app = make_sale_app(pending_poll_after_seconds=3600)
    alice = tipee()
    payment_hash = create_sale(app, merchant, 1000, 200, [alice])
    sim.pay(payment_hash)
    sim.fault("lnInvoicePaymentSend", f"pending_then_{outcome}", count=2)
    answer = app.test_client().post("/api/blink/forward-with-tips", json={"paymentHash": payment_hash})
    assert answer.status_code != 200, answer.get_json()
    assert answer.get_json()["details"]["retryable"] is True
    split = app.extensions["blinkpos"].store.get_fresh(payment_hash)
    assert str(split.status) == "forwarding"
    assert all(str(leg.status) == "failed" for leg in split.legs)
    assert all(leg.last_error.startswith("payment_pending") for leg in split.legs)
    return app, alice, payment_hash, {leg.id: leg.payment_hash for leg in split.legs}


def _retry_while_held(app, sim: SimControl, payment_hash: str, clock: MovableClock) -> None:
    """The worker retries the held legs: Blink answers PENDING again and nothing moves."""
    before = transfers_by_hash(sim)
    clock.advance(minutes=5)
    worker_with_clock(app, clock, "worker:held").run_once()
    split = app.extensions["blinkpos"].store.get_fresh(payment_hash)
    assert str(split.status) == "forwarding"
    assert all(str(leg.status) == "failed" for leg in split.legs)
    assert transfers_by_hash(sim) == before, "a retry of a held payment moves nothing"


def test_a_held_payout_that_later_fails_is_paid_once_with_the_same_invoice(
    make_sale_app, sim: SimControl, merchant: dict, tipee, pos_account: dict
):
    app, alice, payment_hash, leg_hashes = _held_sale(make_sale_app, sim, merchant, tipee, "failure")
    pos_before = sim.balance(pos_account["btcWalletId"])
    clock = MovableClock()
    _retry_while_held(app, sim, payment_hash, clock)
    assert sim.balance(merchant["btcWalletId"]) == 0

    for leg_hash in leg_hashes.values():
        assert sim.settle(leg_hash)["status"] == "FAILURE"  # refunded; the invoice stays payable
    assert sim.balance(pos_account["btcWalletId"]) == pos_before + 1000

    clock.advance(minutes=5)
    worker_with_clock(app, clock, "worker:after-failure").run_once()

    split = app.extensions["blinkpos"].store.get_fresh(payment_hash)
    assert str(split.status) == "completed"
    assert {leg.id: leg.payment_hash for leg in split.legs} == leg_hashes, "no second invoice"
    settled = settled_transfers_by_hash(sim)
    assert [settled[h] for h in leg_hashes.values()] == [1, 1]
    assert [transfers_by_hash(sim)[h] for h in leg_hashes.values()] == [2, 2], "one refunded, one paid"
    assert sim.balance(merchant["btcWalletId"]) == 800
    assert sim.balance(alice["btcWalletId"]) == 200
    assert sim.balance(pos_account["btcWalletId"]) == pos_before


def test_a_held_payout_that_later_succeeds_is_completed_without_paying_again(
    make_sale_app, sim: SimControl, merchant: dict, tipee, pos_account: dict
):
    app, alice, payment_hash, leg_hashes = _held_sale(make_sale_app, sim, merchant, tipee, "success")
    pos_after_payouts = sim.balance(pos_account["btcWalletId"])  # debited while held
    clock = MovableClock()
    _retry_while_held(app, sim, payment_hash, clock)

    for leg_hash in leg_hashes.values():
        assert sim.settle(leg_hash)["status"] == "SUCCESS"
    assert sim.balance(merchant["btcWalletId"]) == 800

    clock.advance(minutes=5)
    worker_with_clock(app, clock, "worker:after-success").run_once()

    split = app.extensions["blinkpos"].store.get_fresh(payment_hash)
    assert str(split.status) == "completed"
    assert {leg.id: leg.payment_hash for leg in split.legs} == leg_hashes, "no second invoice"
    assert [transfers_by_hash(sim)[h] for h in leg_hashes.values()] == [1, 1]
    assert sim.balance(merchant["btcWalletId"]) == 800
    assert sim.balance(alice["btcWalletId"]) == 200
    assert sim.balance(pos_account["btcWalletId"]) == pos_after_payouts
