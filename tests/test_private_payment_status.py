"""payment-status and forward-with-tips tell strangers little (DESIGN §4, issue 13 §2).

Anyone who saw the QR code knows the payment hash. To them the answers carry states, amounts
and times, and per leg its kind, sats and state; never the merchant's wallet id, the memo,
the recipients or error texts. The merchant's own key in X-API-KEY gets everything; another
merchant's key gets the public view. Answers with merchant data are never cached.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.fixtures.payments import sale_body

MEMO = "Table 7 - Alice's birthday"
PUBLIC_SPLIT_FIELDS = {
    "paymentHash",
    "status",
    "invoiceSats",
    "baseSats",
    "tipSats",
    "tipPercent",
    "displayCurrency",
    "createdAt",
    "expiresAt",
    "paidAt",
    "processedAt",
    "legs",
}
PUBLIC_LEG_FIELDS = {"kind", "sats", "status"}


@pytest.fixture
def failed_sale(sale_client, sim, merchant, tipee):
    """A paid sale with two tip recipients whose forwarding failed once (errors recorded)."""
    alice, bob = tipee(), tipee()
    body = sale_body(merchant, 1300, 300, [alice, bob], memo=MEMO)
    invoice = sale_client.post("/api/blink/create-invoice", json=body).get_json()["invoice"]
    sim.pay(invoice["paymentHash"])
    sim.fault("lnInvoicePaymentSend", "error", count=1)
    answer = sale_client.post("/api/blink/forward-with-tips", json={"paymentHash": invoice["paymentHash"]})
    assert answer.status_code in (502, 504)
    return {"hash": invoice["paymentHash"], "recipients": (alice, bob), "failed_answer": answer}


def private_values(merchant: dict, recipients) -> list[str]:
    return [merchant["btcWalletId"], MEMO, *(r["username"] for r in recipients), "simulated"]


def assert_public(answer_text: str, merchant: dict, recipients) -> None:
    for value in private_values(merchant, recipients):
        assert value not in answer_text, value


def test_a_stranger_sees_states_amounts_and_times_only(sale_client, merchant, failed_sale):
    response = sale_client.get(f"/api/payment-status/{failed_sale['hash']}")
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) <= PUBLIC_SPLIT_FIELDS
    assert (body["invoiceSats"], body["baseSats"], body["tipSats"]) == (1300, 1000, 300)
    assert body["status"] == "forwarding"
    assert [set(leg) for leg in body["legs"]] == [PUBLIC_LEG_FIELDS] * 3
    assert [leg["kind"] for leg in body["legs"]] == ["base", "tip", "tip"]
    assert sum(leg["sats"] for leg in body["legs"]) == 1300
    assert_public(response.get_data(as_text=True), merchant, failed_sale["recipients"])


def test_the_merchants_own_key_sees_everything_and_it_is_not_cached(sale_client, merchant, failed_sale):
    response = sale_client.get(
        f"/api/payment-status/{failed_sale['hash']}", headers={"X-API-KEY": merchant["apiKey"]}
    )
    assert response.status_code == 200
    body = response.get_json()
    assert body["merchantWalletId"] == merchant["btcWalletId"]
    assert body["memo"] == MEMO
    assert [leg["recipient"] for leg in body["legs"][1:]] == [
        r["username"] for r in failed_sale["recipients"]
    ]
    assert any(leg["lastError"] for leg in body["legs"])
    assert "no-store" in response.headers["Cache-Control"]


def test_another_merchants_key_gets_the_public_view(sale_client, sim, merchant, failed_sale):
    other = sim.create_account(balance=0)
    response = sale_client.get(
        f"/api/payment-status/{failed_sale['hash']}", headers={"X-API-KEY": other["apiKey"]}
    )
    assert response.status_code == 200
    assert set(response.get_json()) <= PUBLIC_SPLIT_FIELDS
    assert_public(response.get_data(as_text=True), merchant, failed_sale["recipients"])


def test_forward_with_tips_tells_an_unauthenticated_caller_little(sale_client, sim, merchant, failed_sale):
    # Its refusal while a leg failed names neither recipients nor Blink's error text ...
    failed = failed_sale["failed_answer"]
    assert_public(failed.get_data(as_text=True), merchant, failed_sale["recipients"])
    assert [set(leg) for leg in failed.get_json()["details"]["legs"]] == [PUBLIC_LEG_FIELDS] * 3

    # ... and neither does its success, which the merchant's own key sees in full.
    sim.clear_faults()
    time.sleep(1.2)  # the failed leg waits out its first backoff (1 s)
    done = sale_client.post("/api/blink/forward-with-tips", json={"paymentHash": failed_sale["hash"]})
    assert done.status_code == 200, done.get_json()
    assert_public(done.get_data(as_text=True), merchant, failed_sale["recipients"])
    assert done.get_json()["details"]["totalAmount"] == 1300

    mine = sale_client.post(
        "/api/blink/forward-with-tips",
        json={"paymentHash": failed_sale["hash"]},
        headers={"X-API-KEY": merchant["apiKey"]},
    )
    details = mine.get_json()["details"]
    assert details["userWalletId"] == merchant["btcWalletId"]
    names = [leg["username"] for leg in details["tipResult"]["recipients"]]
    assert names == [r["username"] for r in failed_sale["recipients"]]
    assert "no-store" in mine.headers["Cache-Control"]
    assert json.dumps(details)  # the full view is plain JSON
