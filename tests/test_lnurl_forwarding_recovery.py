"""Legs paid at a Lightning Address after something went wrong: a crash between committing the
invoice and paying it, a payment whose answer never came, a stored invoice that expired. The
outcome is always learned from Blink by payment hash; a second invoice only replaces one that
provably can no longer be paid."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import bolt11
import pytest

from service.domain.clock import utc_now
from service.domain.errors import ForwardingIncomplete
from service.domain.model import LegInvoice, LegStatus
from service.payments.lnurl_legs import EXPIRY_GRACE_SECONDS, LnurlLegs
from service.worker import Worker, WorkerSettings
from tests.lnurl_sales import (
    assert_books_hold,
    base_to,
    callbacks,
    forward,
    fresh,
    lnurl_wallet,
    outgoing_from,
    paid_sale,
    payments_of,
    tip_to,
)
from tests.lnurl_support import make_invoice, running_server
from tests.test_commits_per_sale import next_xid


def test_after_a_crash_between_commit_and_payment_the_next_holder_pays_the_stored_invoice_once(
    lnurl_app, lnurl_sim, pos_account, merchant
):
    services = lnurl_app.extensions["blinkpos"]
    store = services.store
    wallet = lnurl_wallet(lnurl_sim)
    payment_hash = paid_sale(
        lnurl_app, lnurl_sim, pos_account, [base_to(merchant, 600), tip_to(wallet["lightningAddress"], 800)]
    )
    # The process that crashed: it claimed, fetched and committed the LNURL leg's invoice, marked
    # the legs sending, and died before paying anything.
    lease = services.config.forward_lease_seconds
    split = store.mark_paid_and_claim(payment_hash, "test", "crashed-process", lease)
    tip = split.legs[1]
    checked = services.lnurl_payer.request_invoice(services.recipients.parse(tip.recipient), 792)
    stored = LegInvoice(checked.payment_request, checked.payment_hash, checked.sats)
    store.start_sending(payment_hash, {tip.id: stored}, [tip.id])

    worker = Worker(
        services.db, store, services.blink, services.forwarder, WorkerSettings.from_config(services.config),
        clock=lambda: utc_now() + timedelta(seconds=lease + 1),
    )
    worker.run_once()

    done = fresh(lnurl_app, payment_hash)
    assert str(done.status) == "completed"
    assert done.legs[1].payment_hash == stored.payment_hash and done.legs[1].received_sats == 792
    assert callbacks(lnurl_sim, wallet) == 1  # the crashed process's fetch, no other
    assert [len(payments_of(lnurl_sim, leg.payment_hash)) for leg in done.legs] == [1, 1]
    assert lnurl_sim.lnurl_wallet(wallet["name"])["balance"] == 792
    assert_books_hold(done)


def test_a_payment_whose_answer_never_came_is_found_by_hash_and_not_paid_again(
    lnurl_app, lnurl_sim, pos_account
):
    wallet = lnurl_wallet(lnurl_sim)
    payment_hash = paid_sale(lnurl_app, lnurl_sim, pos_account, [tip_to(wallet["lightningAddress"], 2000)])
    # Blink pays, but its answer comes after our client has given up.
    lnurl_sim.fault("lnInvoicePaymentSend", "timeout", count=1, delay_ms=3000)

    with pytest.raises(ForwardingIncomplete):
        forward(lnurl_app, payment_hash)
    [leg] = fresh(lnurl_app, payment_hash).legs
    assert leg.last_error.startswith("blink_timeout")

    time.sleep(1.1)
    forward(lnurl_app, payment_hash)

    [done] = fresh(lnurl_app, payment_hash).legs
    assert (done.status, done.received_sats, done.fee_sats) == (LegStatus.SUCCEEDED, 1980, 11)
    assert [m["status"] for m in payments_of(lnurl_sim, leg.payment_hash)] == ["SUCCESS"]
    assert callbacks(lnurl_sim, wallet) == 1


def test_an_expired_unpaid_invoice_is_replaced_and_never_paid(lnurl_app, lnurl_sim, pos_account):
    services = lnurl_app.extensions["blinkpos"]
    wallet = lnurl_wallet(lnurl_sim)
    payment_hash = paid_sale(lnurl_app, lnurl_sim, pos_account, [tip_to(wallet["lightningAddress"], 1000)])
    split = services.store.mark_paid_and_claim(payment_hash, "test", "crashed-process", 0)
    [leg] = split.legs
    expired = make_invoice(990_000, expiry=60, date=int(time.time()) - 60 - EXPIRY_GRACE_SECONDS - 5)
    stale_hash = _hash_of(expired)
    services.store.start_sending(payment_hash, {leg.id: LegInvoice(expired, stale_hash, 990)}, [leg.id])
    services.store.release(payment_hash, "crashed-process")

    forward(lnurl_app, payment_hash)

    [done] = fresh(lnurl_app, payment_hash).legs
    assert done.status is LegStatus.SUCCEEDED and done.payment_hash != stale_hash
    assert payments_of(lnurl_sim, stale_hash) == []
    assert callbacks(lnurl_sim, wallet) == 1
    assert lnurl_sim.lnurl_wallet(wallet["name"])["balance"] == 990


def test_an_expired_invoice_with_a_payment_in_flight_is_kept(lnurl_app, lnurl_sim, pos_account):
    services = lnurl_app.extensions["blinkpos"]
    wallet = lnurl_wallet(lnurl_sim)
    payment_hash = paid_sale(lnurl_app, lnurl_sim, pos_account, [tip_to(wallet["lightningAddress"], 1000)])
    lnurl_sim.fault("lnInvoicePaymentSend", "pending_then_success", count=1)
    with pytest.raises(ForwardingIncomplete):
        forward(lnurl_app, payment_hash)
    [leg] = fresh(lnurl_app, payment_hash).legs

    # Seen from an hour later, when the invoice has long expired: in flight, so not replaceable.
    later = LnurlLegs(
        services.blink,
        services.lnurl_payer,
        services.forwarder._lnurl._fees,
        services.recipients.parse,
        pos_api_key=pos_account["apiKey"],
        pos_wallet_id=pos_account["btcWalletId"],
        clock=lambda: time.time() + 3600,
    )
    assert later.unpayable(leg) is False
    lnurl_sim.settle(leg.payment_hash, "SUCCESS")
    assert later.unpayable(leg) is False


def test_an_lnurl_sale_forwards_in_as_many_commits_as_a_blink_one(
    lnurl_app, lnurl_sim, pos_account, merchant, pg_url
):
    wallets = [lnurl_wallet(lnurl_sim), lnurl_wallet(lnurl_sim)]
    payment_hash = paid_sale(
        lnurl_app,
        lnurl_sim,
        pos_account,
        [base_to(merchant, 1000)] + [tip_to(w["lightningAddress"], 300) for w in wallets],
    )
    before = next_xid(pg_url)
    forward(lnurl_app, payment_hash)
    # Paid and claimed; the invoices recorded and sending; the paid legs and completion.
    assert next_xid(pg_url) - before == 3
    split = fresh(lnurl_app, payment_hash)
    assert str(split.status) == "completed"
    paid = outgoing_from(lnurl_sim, pos_account["btcWalletId"])
    assert [paid[leg.payment_hash] for leg in split.legs] == [1, 1, 1]


def _hash_of(payment_request: str) -> str:
    return bolt11.decode(payment_request).payment_hash


def test_an_address_whose_server_hands_out_a_blink_invoice_is_paid_inside_blink_without_fee(
    make_sale_app, lnurl_sim, pos_account, tipee
):
    blink_user = tipee()

    def blink_invoice(msat: int) -> str:
        created = lnurl_sim.create_invoice(blink_user["apiKey"], blink_user["btcWalletId"], msat // 1000)
        return created["invoice"]["paymentRequest"]

    with running_server() as server:
        address = server.pay_wallet("custodial", invoice=blink_invoice)
        app = make_sale_app(lnurl_insecure_hosts=(lnurl_sim.url.removeprefix("http://"), server.host_port))
        payment_hash = paid_sale(app, lnurl_sim, pos_account, [tip_to(address, 1000)])

        forward(app, payment_hash)

    [leg] = fresh(app, payment_hash).legs
    assert (leg.status, leg.received_sats, leg.fee_sats) == (LegStatus.SUCCEEDED, 990, 0)
    assert lnurl_sim.balance(blink_user["btcWalletId"]) == 990
    assert [m["toWalletId"] for m in payments_of(lnurl_sim, leg.payment_hash)] == [blink_user["btcWalletId"]]


def test_an_invoice_someone_else_already_paid_is_not_counted_as_our_payment(
    make_sale_app, lnurl_sim, pos_account
):
    spent = make_invoice(990_000)
    stranger = lnurl_sim.create_account(balance=5_000)
    assert lnurl_sim.pay_invoice(stranger["apiKey"], stranger["btcWalletId"], spent)["status"] == "SUCCESS"

    with running_server() as server:
        address = server.pay_wallet("replayer", invoice=lambda _msat: spent)
        app = make_sale_app(lnurl_insecure_hosts=(lnurl_sim.url.removeprefix("http://"), server.host_port))
        payment_hash = paid_sale(app, lnurl_sim, pos_account, [tip_to(address, 1000)])
        pos_before = lnurl_sim.balance(pos_account["btcWalletId"])
        with pytest.raises(ForwardingIncomplete):
            forward(app, payment_hash)

    [leg] = fresh(app, payment_hash).legs
    assert leg.status is LegStatus.FAILED and leg.last_error.startswith("invoice_paid_elsewhere:")
    assert lnurl_sim.balance(pos_account["btcWalletId"]) == pos_before
    assert [m["fromWalletId"] for m in payments_of(lnurl_sim, leg.payment_hash)] == [stranger["btcWalletId"]]


def test_a_fee_raised_between_probe_and_payment_closes_the_leg_within_its_sats(
    lnurl_app, lnurl_sim, pos_account, caplog
):
    wallet = lnurl_wallet(lnurl_sim)
    payment_hash = paid_sale(lnurl_app, lnurl_sim, pos_account, [tip_to(wallet["lightningAddress"], 1000)])
    # Sats beyond this sale's, so the dearer payment goes through.
    spare = lnurl_sim.create_invoice(pos_account["apiKey"], pos_account["btcWalletId"], 100)["invoice"]
    lnurl_sim.pay(spare["paymentHash"])
    lnurl_sim.fault("lnInvoicePaymentSend", "delay", count=1, delay_ms=1000)
    raise_fee = threading.Timer(0.4, lnurl_sim.set_fees, (20, 0))
    raise_fee.start()

    forward(lnurl_app, payment_hash)
    raise_fee.join()

    # Blink charged 20 where it probed 6: the leg is closed (not stuck) and logged for an operator,
    # and its record never shows more leaving than the leg.
    [leg] = fresh(lnurl_app, payment_hash).legs
    [move] = payments_of(lnurl_sim, leg.payment_hash)
    assert move["feeSats"] == 20
    assert (leg.status, leg.received_sats, leg.fee_sats) == (LegStatus.SUCCEEDED, 990, 10)
    assert "lnurl_fee_above_reserve_paid" in caplog.messages


def test_an_invoice_the_pos_wallet_already_paid_for_another_leg_never_closes_a_second_leg(
    make_sale_app, lnurl_sim, pos_account
):
    # Some LNURL servers hand out one invoice per amount for a while. Two sales tipping the same
    # sats to the same address then get the same invoice: one payment must not count as two.
    cached: dict[int, str] = {}

    def one_invoice_per_amount(msat: int) -> str:
        return cached.setdefault(msat, make_invoice(msat))

    with running_server() as server:
        address = server.pay_wallet("cache", invoice=one_invoice_per_amount)
        app = make_sale_app(lnurl_insecure_hosts=(lnurl_sim.url.removeprefix("http://"), server.host_port))
        first = paid_sale(app, lnurl_sim, pos_account, [tip_to(address, 1000)])
        forward(app, first)
        second = paid_sale(app, lnurl_sim, pos_account, [tip_to(address, 1000)])
        with pytest.raises(ForwardingIncomplete):
            forward(app, second)
        [first_leg], [second_leg] = fresh(app, first).legs, fresh(app, second).legs
        assert first_leg.status is LegStatus.SUCCEEDED
        assert second_leg.status is LegStatus.FAILED and second_leg.payment_hash is None
        assert second_leg.last_error.startswith("invoice_reused:")
        assert outgoing_from(lnurl_sim, pos_account["btcWalletId"])[first_leg.payment_hash] == 1

        cached.clear()  # the server hands out a fresh invoice again: the second leg is paid once
        time.sleep(1.1)  # the leg's first backoff
        forward(app, second)

    [second_leg] = fresh(app, second).legs
    assert second_leg.status is LegStatus.SUCCEEDED and second_leg.payment_hash != first_leg.payment_hash
    assert outgoing_from(lnurl_sim, pos_account["btcWalletId"])[second_leg.payment_hash] == 1
