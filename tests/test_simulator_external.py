"""External payments on the simulator: invoices it did not issue are paid to the outside world for a
routing fee; lnInvoiceFeeProbe, transactionsByPaymentHash, and payments held PENDING that settle later."""

from __future__ import annotations

import time

import pytest
from coincurve import PrivateKey

from blinksim.invoices import encode_invoice

OUTSIDE_NODE = PrivateKey()


def outside_invoice(sats: int | None, expiry_seconds: int = 600, age_seconds: int = 0) -> dict:
    encoded = encode_invoice(
        OUTSIDE_NODE,
        amount_msat=None if sats is None else sats * 1000,
        description="from outside",
        expiry_seconds=expiry_seconds,
        timestamp=int(time.time()) - age_seconds,
    )
    return {"paymentRequest": encoded.payment_request, "paymentHash": encoded.payment_hash}


def ledger_for(sim, payment_hash: str) -> list[dict]:
    return [t for t in sim.ledger() if t["paymentHash"] == payment_hash]


@pytest.fixture
def sim_fees(sim_clean):
    """The simulator with the default fee policy (1 sat + 5000 ppm), restored after the test."""
    sim_clean.set_fees(1, 5000)
    yield sim_clean
    sim_clean.set_fees(1, 5000)


def test_external_payment_debits_amount_plus_fee_and_is_in_the_ledger_with_the_fee(sim_fees):
    payer = sim_fees.create_account(balance=2000)
    invoice = outside_invoice(1000)

    result = sim_fees.pay_invoice(payer["apiKey"], payer["btcWalletId"], invoice["paymentRequest"], "tip")

    assert result == {"errors": [], "status": "SUCCESS"}
    assert sim_fees.balance(payer["btcWalletId"]) == 2000 - 1000 - 6  # 1 + ceil(1000 * 5000 / 1e6)
    [entry] = ledger_for(sim_fees, invoice["paymentHash"])
    assert entry["fromWalletId"] == payer["btcWalletId"] and entry["toWalletId"] is None
    assert (entry["sats"], entry["feeSats"], entry["status"], entry["memo"]) == (1000, 6, "SUCCESS", "tip")


def test_paying_an_external_invoice_again_is_already_paid_and_moves_nothing(sim_fees):
    payer, other = sim_fees.create_account(balance=500), sim_fees.create_account(balance=500)
    invoice = outside_invoice(100)

    first = sim_fees.pay_invoice(payer["apiKey"], payer["btcWalletId"], invoice["paymentRequest"])
    again = sim_fees.pay_invoice(payer["apiKey"], payer["btcWalletId"], invoice["paymentRequest"])
    by_other = sim_fees.pay_invoice(other["apiKey"], other["btcWalletId"], invoice["paymentRequest"])

    assert (first["status"], again["status"], by_other["status"]) == (
        "SUCCESS",
        "ALREADY_PAID",
        "ALREADY_PAID",
    )
    assert sim_fees.balance(payer["btcWalletId"]) == 500 - 100 - 2
    assert sim_fees.balance(other["btcWalletId"]) == 500
    assert len(ledger_for(sim_fees, invoice["paymentHash"])) == 1


def test_expired_external_invoice_fails_and_moves_nothing(sim_fees):
    payer = sim_fees.create_account(balance=500)
    invoice = outside_invoice(100, expiry_seconds=60, age_seconds=120)

    result = sim_fees.pay_invoice(payer["apiKey"], payer["btcWalletId"], invoice["paymentRequest"])

    assert result["status"] == "FAILURE" and result["errors"][0]["code"] == "INVOICE_EXPIRED"
    assert sim_fees.balance(payer["btcWalletId"]) == 500
    assert ledger_for(sim_fees, invoice["paymentHash"]) == []


def test_balance_must_cover_amount_and_fee(sim_fees):
    payer = sim_fees.create_account(balance=100)
    invoice = outside_invoice(100)

    result = sim_fees.pay_invoice(payer["apiKey"], payer["btcWalletId"], invoice["paymentRequest"])

    assert result["status"] == "FAILURE" and result["errors"][0]["code"] == "INSUFFICIENT_BALANCE"
    assert sim_fees.balance(payer["btcWalletId"]) == 100


@pytest.mark.parametrize(
    "payment_request",
    [
        outside_invoice(None)["paymentRequest"],  # amountless: lnInvoicePaymentSend needs an amount
        outside_invoice(10)["paymentRequest"].replace("lnbc", "lntb", 1),  # breaks the checksum too
        "lnbc10n1pforeigninvoice",
    ],
)
def test_amountless_or_malformed_external_invoices_are_invalid_input(sim_fees, payment_request):
    payer = sim_fees.create_account(balance=100)
    result = sim_fees.pay_invoice(payer["apiKey"], payer["btcWalletId"], payment_request)
    assert result["status"] == "FAILURE" and result["errors"][0]["code"] == "INVALID_INPUT"
    assert sim_fees.balance(payer["btcWalletId"]) == 100


def test_fee_probe_answers_the_fee_policy_outside_and_zero_inside(sim_fees):
    payer, merchant = sim_fees.create_account(balance=10), sim_fees.create_account()
    internal = sim_fees.create_invoice(merchant["apiKey"], merchant["btcWalletId"], 1001)["invoice"]
    external = outside_invoice(1001)

    assert sim_fees.set_fees(3, 10_000) == {"baseSats": 3, "ppm": 10_000}
    outside = sim_fees.fee_probe(payer["apiKey"], payer["btcWalletId"], external["paymentRequest"])
    inside = sim_fees.fee_probe(payer["apiKey"], payer["btcWalletId"], internal["paymentRequest"])

    assert outside == {"errors": [], "amount": 3 + 11}  # ceil(1001 * 10000 / 1e6) = 11
    assert inside == {"errors": [], "amount": 0}


def test_fee_probe_needs_the_write_scope_and_the_callers_wallet(sim_fees):
    reader = sim_fees.create_account(scopes=["READ"])
    writer, stranger = sim_fees.create_account(), sim_fees.create_account()
    request = outside_invoice(10)["paymentRequest"]

    refused = sim_fees.graphql(
        "mutation($i: LnInvoiceFeeProbeInput!) { lnInvoiceFeeProbe(input: $i) { amount } }",
        {"i": {"walletId": reader["btcWalletId"], "paymentRequest": request}},
        api_key=reader["apiKey"],
    ).json()
    wrong_wallet = sim_fees.fee_probe(writer["apiKey"], stranger["btcWalletId"], request)

    assert refused["errors"][0]["extensions"]["code"] == "NOT_AUTHORIZED"
    assert wrong_wallet["amount"] is None and wrong_wallet["errors"][0]["code"] == "INVALID_INPUT"


@pytest.mark.parametrize(("base", "ppm"), [(-1, 0), (0, 1_000_001), ("1", 0), (1.5, 0)])
def test_malformed_fee_policy_is_refused(sim_fees, base, ppm):
    response = sim_fees._session.post(
        sim_fees.url + "/sim/fees", json={"baseSats": base, "ppm": ppm}, timeout=5
    )
    assert response.status_code == 400 and response.json()["code"] == "invalid_fees"


def test_transactions_by_payment_hash_show_the_outgoing_payment_with_its_fee(sim_fees):
    payer = sim_fees.create_account(balance=1000)
    invoice = outside_invoice(200)
    sim_fees.pay_invoice(payer["apiKey"], payer["btcWalletId"], invoice["paymentRequest"])

    [tx] = sim_fees.transactions_by_hash(payer["apiKey"], payer["btcWalletId"], invoice["paymentHash"])
    unknown = sim_fees.transactions_by_hash(payer["apiKey"], payer["btcWalletId"], "ab" * 32)

    assert (tx["direction"], tx["status"], tx["settlementAmount"], tx["settlementFee"]) == (
        "SEND",
        "SUCCESS",
        -202,
        2,
    )
    assert tx["initiationVia"] == {
        "paymentHash": invoice["paymentHash"],
        "paymentRequest": invoice["paymentRequest"],
    }
    assert tx["settlementVia"]["__typename"] == "SettlementViaLn"
    assert unknown == []


def test_transactions_by_payment_hash_inside_blink_show_send_and_receive(sim_fees):
    payer, merchant = sim_fees.create_account(balance=100), sim_fees.create_account()
    invoice = sim_fees.create_invoice(merchant["apiKey"], merchant["btcWalletId"], 40)["invoice"]
    sim_fees.pay_invoice(payer["apiKey"], payer["btcWalletId"], invoice["paymentRequest"])
    preimage = sim_fees.invoice(invoice["paymentHash"])["preimage"]

    [sent] = sim_fees.transactions_by_hash(payer["apiKey"], payer["btcWalletId"], invoice["paymentHash"])
    [received] = sim_fees.transactions_by_hash(
        merchant["apiKey"], merchant["btcWalletId"], invoice["paymentHash"]
    )

    assert (sent["direction"], sent["status"], sent["settlementAmount"], sent["settlementFee"]) == (
        "SEND",
        "SUCCESS",
        -40,
        0,
    )
    assert sent["settlementVia"] == {
        "__typename": "SettlementViaIntraLedger",
        "counterPartyWalletId": merchant["btcWalletId"],
        "preImage": preimage,
    }
    assert (received["direction"], received["settlementAmount"]) == ("RECEIVE", 40)


# Payments held PENDING -----------------------------------------------------------------------------


def test_held_payment_that_later_fails_refunds_the_payer_and_leaves_the_invoice_payable(sim_fees):
    payer, merchant = sim_fees.create_account(balance=100), sim_fees.create_account()
    invoice = sim_fees.create_invoice(merchant["apiKey"], merchant["btcWalletId"], 30)["invoice"]
    sim_fees.fault("lnInvoicePaymentSend", "pending_then_failure", count=1)

    first = sim_fees.pay_invoice(payer["apiKey"], payer["btcWalletId"], invoice["paymentRequest"])
    balance_while_held = sim_fees.balance(payer["btcWalletId"])
    retry_while_held = sim_fees.pay_invoice(payer["apiKey"], payer["btcWalletId"], invoice["paymentRequest"])
    [held] = sim_fees.transactions_by_hash(payer["apiKey"], payer["btcWalletId"], invoice["paymentHash"])
    settled = sim_fees.settle(invoice["paymentHash"])
    [failed] = sim_fees.transactions_by_hash(payer["apiKey"], payer["btcWalletId"], invoice["paymentHash"])

    assert (first["status"], retry_while_held["status"]) == ("PENDING", "PENDING")
    assert balance_while_held == 70 and held["status"] == "PENDING"
    assert settled["status"] == "FAILURE" and failed["status"] == "FAILURE"
    assert sim_fees.balance(payer["btcWalletId"]) == 100
    assert sim_fees.balance(merchant["btcWalletId"]) == 0
    assert sim_fees.invoice(invoice["paymentHash"])["status"] == "PENDING"
    again = sim_fees.pay_invoice(payer["apiKey"], payer["btcWalletId"], invoice["paymentRequest"])
    assert again["status"] == "SUCCESS" and sim_fees.balance(merchant["btcWalletId"]) == 30


def test_held_payment_that_later_succeeds_settles_by_itself_after_delay(sim_fees):
    payer, merchant = sim_fees.create_account(balance=100), sim_fees.create_account()
    invoice = sim_fees.create_invoice(merchant["apiKey"], merchant["btcWalletId"], 30)["invoice"]
    sim_fees.fault("lnInvoicePaymentSend", "pending_then_success", count=1, delay_ms=300)

    first = sim_fees.pay_invoice(payer["apiKey"], payer["btcWalletId"], invoice["paymentRequest"])
    status_while_held = sim_fees.invoice(invoice["paymentHash"])["status"]
    deadline = time.monotonic() + 10
    while sim_fees.invoice(invoice["paymentHash"])["status"] != "PAID" and time.monotonic() < deadline:
        time.sleep(0.05)

    assert first["status"] == "PENDING" and status_while_held == "PENDING"
    assert sim_fees.invoice(invoice["paymentHash"])["status"] == "PAID"
    assert sim_fees.balance(payer["btcWalletId"]) == 70 and sim_fees.balance(merchant["btcWalletId"]) == 30
    [entry] = ledger_for(sim_fees, invoice["paymentHash"])
    assert entry["status"] == "SUCCESS"
    again = sim_fees.pay_invoice(payer["apiKey"], payer["btcWalletId"], invoice["paymentRequest"])
    assert again["status"] == "ALREADY_PAID"


def test_held_external_payment_settled_as_failure_refunds_amount_and_fee(sim_fees):
    payer = sim_fees.create_account(balance=1000)
    invoice = outside_invoice(500)
    sim_fees.fault("lnInvoicePaymentSend", "pending_then_success", count=1)

    first = sim_fees.pay_invoice(payer["apiKey"], payer["btcWalletId"], invoice["paymentRequest"])
    held_balance = sim_fees.balance(payer["btcWalletId"])
    settled = sim_fees.settle(invoice["paymentHash"], "FAILURE")

    assert first["status"] == "PENDING" and held_balance == 1000 - 500 - 4
    assert (settled["status"], settled["sats"], settled["feeSats"]) == ("FAILURE", 500, 4)
    assert sim_fees.balance(payer["btcWalletId"]) == 1000
    [tx] = sim_fees.transactions_by_hash(payer["apiKey"], payer["btcWalletId"], invoice["paymentHash"])
    assert tx["status"] == "FAILURE"


def test_settling_a_payment_that_is_not_held_is_404(sim_fees):
    response = sim_fees._session.post(f"{sim_fees.url}/sim/payments/{'cd' * 32}/settle", json={}, timeout=5)
    assert response.status_code == 404 and response.json()["code"] == "not_held"
