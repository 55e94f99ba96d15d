"""A forward cut off between storing its legs' invoices and paying them (the process killed,
its lease left behind): the next holder, once the lease has run out, pays the STORED invoices,
each exactly once. The crash state is built with the store's own state changes, and the lease
runs out on the worker's clock, not on the wall clock."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from service.domain.clock import utc_now
from service.payments.forwarding import leg_memo
from service.worker import Worker, WorkerSettings
from tests.fixtures.payments import sale_body


def test_next_holder_pays_each_stored_invoice_once_after_a_crash_before_paying(
    sale_app, sim, pos_account, merchant, tipee
):
    services = sale_app.extensions["blinkpos"]
    store, blink = services.store, services.blink
    client = sale_app.test_client()
    tipees = [tipee(), tipee()]
    created = client.post("/api/blink/create-invoice", json=sale_body(merchant, 1000, 150, tipees))
    payment_hash = created.get_json()["invoice"]["paymentHash"]
    sim.pay(payment_hash)
    pos_before = sim.balance(pos_account["btcWalletId"])

    # The process that crashed: it claimed, made and committed every leg's invoice, marked the
    # legs sending, and died before its payments left.
    lease = services.config.forward_lease_seconds
    split = store.mark_paid_and_claim(payment_hash, "test", "crashed-process", lease)
    invoices = {}
    for leg in split.legs:
        wallet = merchant["btcWalletId"] if leg.kind == "base" else leg.recipient_wallet_id
        invoice = blink.create_invoice_for_recipient(wallet, leg.sats, leg_memo(split, leg))
        invoices[leg.id] = (invoice.payment_request, invoice.payment_hash)
    sending = store.start_sending(payment_hash, invoices, list(invoices))
    assert {leg.id: leg.payment_hash for leg in sending} == {k: v[1] for k, v in invoices.items()}

    # Before the lease runs out nobody else may pay: the POS call is turned away.
    refused = client.post("/api/blink/forward-with-tips", json={"paymentHash": payment_hash})
    assert refused.status_code == 409, refused.get_json()
    assert sim.balance(pos_account["btcWalletId"]) == pos_before

    worker = Worker(
        services.db, store, blink, services.forwarder, WorkerSettings.from_config(services.config),
        clock=lambda: utc_now() + timedelta(seconds=lease + 1),
    )
    worker.run_once()

    done = store.get_fresh(payment_hash)
    assert str(done.status) == "completed"
    assert {leg.id: leg.payment_hash for leg in done.legs} == {k: v[1] for k, v in invoices.items()}
    paid = Counter(entry["paymentHash"] for entry in sim.ledger() if entry["paymentHash"])
    assert [paid[hash_] for _, hash_ in invoices.values()] == [1, 1, 1]
    assert sim.balance(merchant["btcWalletId"]) == 850
    assert sum(sim.balance(t["btcWalletId"]) for t in tipees) == 150
    assert sim.balance(pos_account["btcWalletId"]) == pos_before - 1000

    # The POS page asking again later changes nothing.
    again = client.post("/api/blink/forward-with-tips", json={"paymentHash": payment_hash})
    assert again.status_code == 200 and again.get_json()["details"]["alreadyProcessed"] is True
    assert Counter(e["paymentHash"] for e in sim.ledger() if e["paymentHash"]) == paid
