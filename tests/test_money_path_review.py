"""Holes found by an adversarial review of the money path, each pinned by a test.

Real Postgres, Valkey and the simulator over HTTP; time is moved only through the clocks the
forwarder and the worker accept, never by touching rows behind the store's back.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from blinksim.control import SimControl
from service.domain.errors import ForwardingIncomplete
from service.worker import Worker, WorkerSettings
from tests.fixtures.clocks import MovableClock, create_sale, forwarder_with_clock, transfers_by_hash

# --- a leg whose invoice cannot be created -------------------------------------------------------


def test_a_leg_whose_invoice_cannot_be_created_uses_up_its_attempts_and_fails_the_split(
    make_sale_app, sim: SimControl, merchant: dict, tipee
):
    # Before the fix only a payment attempt counted: a leg whose invoice Blink kept refusing
    # stayed at 0 attempts, was retried every second forever and never reached an operator.
    app = make_sale_app(leg_max_attempts=3)
    store = app.extensions["blinkpos"].store
    alice = tipee()
    payment_hash = create_sale(app, merchant, 300, 100, [alice])
    sim.pay(payment_hash)
    # The base leg is invoiced on behalf of the merchant too: give it its invoice before the
    # fault, so only the tip leg is the one whose invoice cannot be created.
    (base_leg,) = [leg for leg in store.get_fresh(payment_hash).legs if str(leg.kind) == "base"]
    base_invoice = app.extensions["blinkpos"].blink.create_invoice_for_recipient(
        merchant["btcWalletId"], base_leg.sats, "base"
    )
    invoice = (base_invoice.payment_request, base_invoice.payment_hash)
    store.start_sending(payment_hash, {base_leg.id: invoice}, [])  # recorded, not yet sending
    sim.fault("lnInvoiceCreateOnBehalfOfRecipient", "error")  # every attempt, until cleared
    clock = MovableClock()
    forwarder = forwarder_with_clock(app, clock)

    delays = []
    for _ in range(3):
        with pytest.raises(ForwardingIncomplete):
            forwarder.forward(payment_hash, source="test")
        (tip_leg,) = [leg for leg in store.get_fresh(payment_hash).legs if str(leg.kind) == "tip"]
        due = tip_leg.next_attempt_at
        delays.append(None if due is None else (due - clock.now).total_seconds())
        clock.advance(hours=2)

    split = store.get_fresh(payment_hash)
    legs = {str(leg.kind): leg for leg in split.legs}
    assert legs["tip"].attempts == 3
    assert delays == [1.0, 2.0, None], "the backoff grows; the last attempt leaves no next one"
    assert str(split.status) == "failed", "out of attempts: an operator must look"
    assert str(legs["base"].status) == "succeeded"
    assert legs["base"].attempts == 1
    assert sim.balance(merchant["btcWalletId"]) == 200
    assert sim.balance(alice["btcWalletId"]) == 0


# --- a paid split whose last status check failed ---------------------------------------------


def test_a_paid_split_is_not_expired_when_blink_does_not_answer_the_check_after_expiry(
    make_sale_app, sim: SimControl, merchant: dict
):
    # The webhook is lost, so only the worker's poll can find this payment. Before the fix the
    # split was stamped "checked" before Blink answered, so a failed check after expiry let the
    # same cycle expire it, and an expired split is never polled again: the sats stayed behind.
    app = make_sale_app(pending_poll_after_seconds=3600)
    services = app.extensions["blinkpos"]
    payment_hash = create_sale(app, merchant, 500)
    sim.pay(payment_hash)
    clock = MovableClock(datetime.now(UTC) + timedelta(hours=25))  # past the 24 h expiry
    worker = Worker(
        services.db,
        services.store,
        services.blink,
        services.forwarder,
        WorkerSettings(poll_seconds=0.1, pending_poll_after_seconds=3600),
        clock=clock,
    )

    sim.fault("lnInvoicePaymentStatusByHash", "error", count=1)
    report = worker.run_once()
    assert (report.checked, report.expired) == (1, 0)
    assert str(services.store.get_fresh(payment_hash).status) == "pending"

    clock.advance(seconds=601)  # the split's next check is due (its backoff caps at 600 s)
    worker.run_once()
    split = services.store.get_fresh(payment_hash)
    assert str(split.status) == "completed"
    assert sim.balance(merchant["btcWalletId"]) == 500
    (leg,) = split.legs
    assert transfers_by_hash(sim)[leg.payment_hash] == 1


def test_an_unpaid_split_is_still_expired_once_blink_answers_after_expiry(
    make_sale_app, sim: SimControl, merchant: dict
):
    app = make_sale_app(pending_poll_after_seconds=3600)
    services = app.extensions["blinkpos"]
    payment_hash = create_sale(app, merchant, 500)
    clock = MovableClock(datetime.now(UTC) + timedelta(hours=25))
    worker = Worker(
        services.db,
        services.store,
        services.blink,
        services.forwarder,
        WorkerSettings(poll_seconds=0.1, pending_poll_after_seconds=3600),
        clock=clock,
    )

    report = worker.run_once()

    assert (report.checked, report.expired) == (1, 1)
    assert str(services.store.get_fresh(payment_hash).status) == "expired"


# --- error answers of forward-with-tips ------------------------------------------------------


def test_blink_refusing_the_paid_check_answers_502_and_a_retry_forwards(
    make_sale_app, sim: SimControl, merchant: dict
):
    # Before the fix a BlinkRejected from the status query escaped as a bare 500.
    app = make_sale_app()
    client = app.test_client()
    payment_hash = create_sale(app, merchant, 400)
    sim.pay(payment_hash)
    sim.fault("lnInvoicePaymentStatusByHash", "error", count=1)

    refused = client.post("/api/blink/forward-with-tips", json={"paymentHash": payment_hash})

    assert refused.status_code == 502, refused.get_json()
    assert refused.get_json()["code"] == "blink_rejected"
    assert refused.get_json()["details"]["retryable"] is True
    assert sim.balance(merchant["btcWalletId"]) == 0
    retried = client.post("/api/blink/forward-with-tips", json={"paymentHash": payment_hash})
    assert retried.status_code == 200, retried.get_json()
    assert sim.balance(merchant["btcWalletId"]) == 400


def test_a_forward_that_lost_its_lease_midway_answers_409_and_pays_nothing_twice(
    make_sale_app, sim: SimControl, merchant: dict
):
    # The lease ran out while the payout was in flight and another holder took the split:
    # completing is no longer ours to do. Before the fix SplitNotCompletable became a 500.
    app = make_sale_app(forward_lease_seconds=1, blink_read_timeout_seconds=20.0)
    store = app.extensions["blinkpos"].store
    client = app.test_client()
    payment_hash = create_sale(app, merchant, 400)
    sim.pay(payment_hash)
    # The payout is held long enough for the intruder to act however slow the machine is; the
    # intruder waits for the leg to be in flight, then for the lease to run out, not a set time.
    sim.fault("lnInvoicePaymentSend", "delay", count=1, delay_ms=8000)
    taken = []

    def take_over() -> None:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            split = store.get_fresh(payment_hash)
            if split.claimed_at is not None and all(str(leg.status) == "sending" for leg in split.legs):
                break
            time.sleep(0.05)
        lease_ends = split.claimed_at + timedelta(seconds=1.2)
        time.sleep(max((lease_ends - datetime.now(UTC)).total_seconds(), 0))
        taken.append(store.claim(payment_hash, "another-instance", 1))

    intruder = threading.Thread(target=take_over)
    intruder.start()
    response = client.post("/api/blink/forward-with-tips", json={"paymentHash": payment_hash})
    intruder.join()

    assert taken and taken[0] is not None, "the other holder took the expired lease"
    assert response.status_code == 409, response.get_json()
    assert response.get_json()["code"] == "forwarding_in_progress"
    split = store.get_fresh(payment_hash)
    assert (str(split.status), split.claimed_by) == ("forwarding", "another-instance")
    (leg,) = split.legs
    assert str(leg.status) == "succeeded"
    assert transfers_by_hash(sim)[leg.payment_hash] == 1
    assert sim.balance(merchant["btcWalletId"]) == 400
