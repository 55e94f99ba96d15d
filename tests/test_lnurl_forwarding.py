"""Legs paid at a Lightning Address, exactly once (DESIGN §8): the invoice fetched from a real
LNURL server (the simulator's foreign wallets, reached through LNURL_INSECURE_HOSTS), checked,
committed, its fee probed, paid from the POS wallet, and its fee recorded."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from service.domain.errors import ForwardingIncomplete
from service.domain.model import LegStatus, Payout
from service.operator import reset_for_retry
from service.payments.forwarding import leg_memo
from service.worker import Worker
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


def by_recipient(split):
    return {leg.recipient: leg for leg in split.legs}


def test_a_sale_pays_blink_and_lnurl_legs_once_and_records_what_each_received_and_cost(
    lnurl_app, lnurl_sim, pos_account, merchant, tipee
):
    chatty = lnurl_wallet(lnurl_sim, commentAllowed=5)
    quiet = lnurl_wallet(lnurl_sim)
    blink_tipee = tipee()
    payment_hash = paid_sale(
        lnurl_app,
        lnurl_sim,
        pos_account,
        [
            base_to(merchant, 1000),
            tip_to(chatty["lightningAddress"], 1000),
            tip_to(quiet["lightningAddress"], 200),
            tip_to(blink_tipee, 100),
        ],
    )
    pos_before = lnurl_sim.balance(pos_account["btcWalletId"])

    outcome = forward(lnurl_app, payment_hash)

    split = fresh(lnurl_app, payment_hash)
    legs = by_recipient(split)
    assert str(outcome.split.status) == "completed"
    # 1% reserve, at least 3 sats: the invoices are for 990 and 197 sats; the fee is 1 + 0.5%.
    chatty_leg, quiet_leg = legs[chatty["lightningAddress"]], legs[quiet["lightningAddress"]]
    assert (chatty_leg.payout, chatty_leg.received_sats, chatty_leg.fee_sats) == (Payout.LNURL, 990, 6)
    assert (quiet_leg.received_sats, quiet_leg.fee_sats) == (197, 2)
    assert (legs[blink_tipee["username"]].received_sats, legs[blink_tipee["username"]].fee_sats) == (100, 0)
    assert lnurl_sim.lnurl_wallet(chatty["name"])["balance"] == 990
    assert lnurl_sim.lnurl_wallet(quiet["name"])["balance"] == 197
    assert lnurl_sim.balance(merchant["btcWalletId"]) == 1000
    assert lnurl_sim.balance(blink_tipee["btcWalletId"]) == 100
    # The memo goes along as a comment only where the wallet takes one, cut to its length.
    assert lnurl_sim.lnurl_wallet(chatty["name"])["comments"] == [leg_memo(split, chatty_leg)[:5]]
    assert lnurl_sim.lnurl_wallet(quiet["name"])["comments"] in ([], [None])
    # Each leg's invoice paid once; the POS wallet paid out exactly what the legs record.
    paid = outgoing_from(lnurl_sim, pos_account["btcWalletId"])
    assert [paid[leg.payment_hash] for leg in split.legs] == [1, 1, 1, 1]
    spent = sum(leg.received_sats + leg.fee_sats for leg in split.legs)
    assert spent == 1000 + 990 + 6 + 197 + 2 + 100
    assert pos_before - lnurl_sim.balance(pos_account["btcWalletId"]) == spent
    assert_books_hold(split)
    assert callbacks(lnurl_sim, chatty) == callbacks(lnurl_sim, quiet) == 1

    # The POS page asking again changes nothing.
    assert forward(lnurl_app, payment_hash).already_processed is True
    assert outgoing_from(lnurl_sim, pos_account["btcWalletId"]) == paid
    metrics = lnurl_app.extensions["blinkpos"].metrics
    assert metrics.lnurl_legs.labels("paid", "ok")._value.get() == 2
    assert metrics.lnurl_fees._value.get() == 8


def test_a_merchant_paid_at_an_address_gets_the_base_leg_minus_the_reserve(lnurl_app, lnurl_sim, pos_account):
    shop = lnurl_wallet(lnurl_sim)
    payment_hash = paid_sale(lnurl_app, lnurl_sim, pos_account, [base_to(shop["lightningAddress"], 5000)])

    forward(lnurl_app, payment_hash)

    [leg] = fresh(lnurl_app, payment_hash).legs
    assert (leg.status, leg.received_sats, leg.fee_sats) == (LegStatus.SUCCEEDED, 4950, 26)
    assert lnurl_sim.lnurl_wallet(shop["name"])["balance"] == 4950


def test_a_merchant_at_a_blink_domain_address_is_paid_to_the_wallet_on_its_base_leg(
    lnurl_app, lnurl_sim, pos_account, merchant
):
    services = lnurl_app.extensions["blinkpos"]
    payment_hash = paid_sale(lnurl_app, lnurl_sim, pos_account, [base_to(merchant, 700)])
    # As create-invoice stores it for "name@blink.sv": no merchant wallet, the leg carries it.
    with services.db.connection() as conn:
        conn.execute(
            "UPDATE payment_splits SET merchant_wallet_id = NULL, merchant_key_fingerprint = NULL,"
            " merchant_payout_address = 'shop@blink.sv' WHERE payment_hash = %s",
            (payment_hash,),
        )

    forward(lnurl_app, payment_hash)

    assert lnurl_sim.balance(merchant["btcWalletId"]) == 700
    assert str(fresh(lnurl_app, payment_hash).status) == "completed"


HOSTILE = [
    ({"mode": "wrong_amount"}, "invoice_amount_mismatch"),
    ({"mode": "amountless"}, "invoice_amountless"),
    ({"mode": "expired"}, "invoice_expired"),
    ({"mode": "error"}, "recipient_invalid"),
    ({"mode": "error", "step": "callback", "httpStatus": 500}, "recipient_invalid"),
    ({"mode": "min_above_amount"}, "recipient_amount_out_of_range"),
    ({"mode": "not_pay_request"}, "recipient_invalid"),
    ({"mode": "slow", "delayMs": 2500}, "recipient_unreachable"),
    ({"mode": "oversized"}, "recipient_unreachable"),
    ({"mode": "not_json"}, "recipient_unreachable"),
    ({"mode": "redirect"}, "recipient_unreachable"),
    ({"mode": "redirect", "step": "callback"}, "recipient_unreachable"),
]


@pytest.mark.parametrize(
    ("settings", "code"), HOSTILE, ids=[f"{s['mode']}-{s.get('step', 'both')}" for s, _ in HOSTILE]
)
def test_a_hostile_server_leaves_its_leg_unpaid_with_a_reason_and_the_others_paid(
    lnurl_app, lnurl_sim, pos_account, merchant, settings, code
):
    hostile = lnurl_wallet(lnurl_sim, **settings)
    payment_hash = paid_sale(
        lnurl_app, lnurl_sim, pos_account, [base_to(merchant, 900), tip_to(hostile["lightningAddress"], 300)]
    )
    pos_before = lnurl_sim.balance(pos_account["btcWalletId"])

    with pytest.raises(ForwardingIncomplete):
        forward(lnurl_app, payment_hash)

    split = fresh(lnurl_app, payment_hash)
    base, tip = split.legs
    assert base.status is LegStatus.SUCCEEDED and lnurl_sim.balance(merchant["btcWalletId"]) == 900
    assert tip.status is LegStatus.FAILED and tip.last_error.startswith(code + ":"), tip.last_error
    assert tip.payment_request is None and tip.received_sats is None and tip.next_attempt_at is not None
    # Nothing left the POS wallet for it: only the base moved.
    assert pos_before - lnurl_sim.balance(pos_account["btcWalletId"]) == 900
    assert lnurl_sim.lnurl_wallet(hostile["name"])["balance"] == 0
    assert str(split.status) == "forwarding" and split.claimed_by is None
    assert lnurl_failures(lnurl_app) == 1


def lnurl_failures(app) -> float:
    registry = app.extensions["blinkpos"].metrics.registry
    return sum(
        sample.value
        for family in registry.collect()
        if family.name == "blinkpos_lnurl_legs"
        for sample in family.samples
        if sample.name.endswith("_total") and sample.labels["outcome"] == "failed"
    )


@pytest.mark.parametrize("mode", ["description_hash_mismatch", "plain_description"])
def test_an_invoice_whose_description_does_not_hash_to_the_metadata_is_still_paid(
    lnurl_app, lnurl_sim, pos_account, mode
):
    wallet = lnurl_wallet(lnurl_sim, mode=mode)
    payment_hash = paid_sale(lnurl_app, lnurl_sim, pos_account, [tip_to(wallet["lightningAddress"], 400)])

    forward(lnurl_app, payment_hash)

    [leg] = fresh(lnurl_app, payment_hash).legs
    assert (leg.status, leg.received_sats, leg.fee_sats) == (LegStatus.SUCCEEDED, 396, 3)
    assert lnurl_sim.lnurl_wallet(wallet["name"])["balance"] == 396


def test_twenty_concurrent_forwards_fetch_one_invoice_per_leg_and_pay_it_once(
    lnurl_app, make_sale_app, lnurl_sim, pos_account
):
    # Two instances of the service, ten callers each.
    hosts = lnurl_app.extensions["blinkpos"].config.lnurl_insecure_hosts
    instances = [lnurl_app, make_sale_app(lnurl_insecure_hosts=hosts)]
    wallets = [lnurl_wallet(lnurl_sim), lnurl_wallet(lnurl_sim, mode="slow", delayMs=300)]
    payment_hash = paid_sale(
        lnurl_app, lnurl_sim, pos_account, [base_to(wallets[0]["lightningAddress"], 2000)]
        + [tip_to(wallets[1]["lightningAddress"], 500)],
    )

    def attempt(index):
        try:
            return forward(instances[index % 2], payment_hash).split.status
        except Exception as exc:  # noqa: BLE001 - the refusals are the point
            return type(exc).__name__

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(attempt, range(20)))

    split = fresh(lnurl_app, payment_hash)
    assert str(split.status) == "completed", results
    assert set(results) <= {"completed", "ForwardingInProgress"}
    assert [callbacks(lnurl_sim, w) for w in wallets] == [1, 1]
    paid = outgoing_from(lnurl_sim, pos_account["btcWalletId"])
    assert [paid[leg.payment_hash] for leg in split.legs] == [1, 1]
    assert [lnurl_sim.lnurl_wallet(w["name"])["balance"] for w in wallets] == [1980, 495]
    assert_books_hold(split)


def test_a_server_down_at_forward_time_is_paid_once_by_the_worker_when_it_is_back(
    lnurl_app, lnurl_sim, pos_account, merchant
):
    down = lnurl_wallet(lnurl_sim, mode="error", httpStatus=503)
    payment_hash = paid_sale(
        lnurl_app, lnurl_sim, pos_account, [base_to(merchant, 500), tip_to(down["lightningAddress"], 400)]
    )
    with pytest.raises(ForwardingIncomplete):
        forward(lnurl_app, payment_hash)
    assert lnurl_sim.lnurl_wallet(down["name"])["balance"] == 0

    lnurl_sim.update_lnurl_wallet(down["name"], mode="normal")
    time.sleep(1.1)  # the leg's first backoff
    Worker.from_services(lnurl_app.extensions["blinkpos"]).run_once()

    split = fresh(lnurl_app, payment_hash)
    assert str(split.status) == "completed"
    assert lnurl_sim.lnurl_wallet(down["name"])["balance"] == 396
    assert callbacks(lnurl_sim, down) == 1
    assert [len(payments_of(lnurl_sim, leg.payment_hash)) for leg in split.legs] == [1, 1]
    assert_books_hold(split)


def test_a_leg_out_of_attempts_fails_the_sale_and_an_operator_retry_pays_it_once(
    make_sale_app, lnurl_sim, pos_account, merchant
):
    app = make_sale_app(
        lnurl_insecure_hosts=(lnurl_sim.url.removeprefix("http://"),), leg_max_attempts=2
    )
    services = app.extensions["blinkpos"]
    down = lnurl_wallet(lnurl_sim, mode="error", httpStatus=502)
    legs = [base_to(merchant, 300), tip_to(down["lightningAddress"], 700)]
    payment_hash = paid_sale(app, lnurl_sim, pos_account, legs)
    with pytest.raises(ForwardingIncomplete):
        forward(app, payment_hash)
    time.sleep(1.1)
    with pytest.raises(ForwardingIncomplete):
        forward(app, payment_hash)
    failed = fresh(app, payment_hash)
    assert str(failed.status) == "failed" and failed.legs[1].attempts == 2

    lnurl_sim.update_lnurl_wallet(down["name"], mode="normal")
    assert reset_for_retry(services.store, payment_hash, services.config.forward_lease_seconds) == 1
    Worker.from_services(services).run_once()

    done = fresh(app, payment_hash)
    assert str(done.status) == "completed"
    assert callbacks(lnurl_sim, down) == 1 and lnurl_sim.lnurl_wallet(down["name"])["balance"] == 693
    assert [len(payments_of(lnurl_sim, leg.payment_hash)) for leg in done.legs] == [1, 1]


@pytest.mark.parametrize("settles", ["SUCCESS", "FAILURE"])
def test_a_payment_held_pending_is_resolved_by_hash_with_one_invoice_and_one_payment(
    lnurl_app, lnurl_sim, pos_account, settles
):
    wallet = lnurl_wallet(lnurl_sim)
    payment_hash = paid_sale(lnurl_app, lnurl_sim, pos_account, [tip_to(wallet["lightningAddress"], 1000)])
    lnurl_sim.fault("lnInvoicePaymentSend", "pending_then_success", count=1)

    with pytest.raises(ForwardingIncomplete):
        forward(lnurl_app, payment_hash)
    [leg] = fresh(lnurl_app, payment_hash).legs
    assert leg.status is LegStatus.FAILED and leg.last_error.startswith("payment_pending")

    # Still in flight: the next attempt asks Blink by hash and neither pays nor re-invoices.
    time.sleep(1.1)
    with pytest.raises(ForwardingIncomplete):
        forward(lnurl_app, payment_hash)
    assert len(payments_of(lnurl_sim, leg.payment_hash)) == 1

    lnurl_sim.settle(leg.payment_hash, settles)
    time.sleep(2.1)
    forward(lnurl_app, payment_hash)

    [done] = fresh(lnurl_app, payment_hash).legs
    moves = payments_of(lnurl_sim, leg.payment_hash)
    assert done.status is LegStatus.SUCCEEDED and done.payment_hash == leg.payment_hash
    assert (done.received_sats, done.fee_sats) == (990, 6)
    assert callbacks(lnurl_sim, wallet) == 1
    # Settled: that one payment; failed (refunded): the same invoice paid once more.
    expected = ["SUCCESS"] if settles == "SUCCESS" else ["FAILURE", "SUCCESS"]
    assert [m["status"] for m in moves] == expected
    assert lnurl_sim.lnurl_wallet(wallet["name"])["balance"] == 990
    assert_books_hold(fresh(lnurl_app, payment_hash))


def test_a_fee_above_the_reserve_leaves_the_leg_unpaid_until_the_fee_drops(lnurl_app, lnurl_sim, pos_account):
    wallet = lnurl_wallet(lnurl_sim)
    payment_hash = paid_sale(lnurl_app, lnurl_sim, pos_account, [tip_to(wallet["lightningAddress"], 1000)])
    lnurl_sim.set_fees(50, 0)
    pos_before = lnurl_sim.balance(pos_account["btcWalletId"])

    with pytest.raises(ForwardingIncomplete):
        forward(lnurl_app, payment_hash)
    [leg] = fresh(lnurl_app, payment_hash).legs
    assert leg.status is LegStatus.FAILED and leg.last_error.startswith("fee_above_reserve:")
    assert leg.payment_request is not None  # kept: the same invoice is paid once the fee fits
    assert payments_of(lnurl_sim, leg.payment_hash) == []
    assert lnurl_sim.balance(pos_account["btcWalletId"]) == pos_before

    lnurl_sim.set_fees(1, 5000)
    time.sleep(1.1)
    forward(lnurl_app, payment_hash)

    [done] = fresh(lnurl_app, payment_hash).legs
    assert (done.status, done.payment_hash, done.fee_sats) == (LegStatus.SUCCEEDED, leg.payment_hash, 6)
    assert len(payments_of(lnurl_sim, leg.payment_hash)) == 1 and callbacks(lnurl_sim, wallet) == 1
    assert pos_before - lnurl_sim.balance(pos_account["btcWalletId"]) == 996
