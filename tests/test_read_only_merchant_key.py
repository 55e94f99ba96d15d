"""A READ-only Blink key is all a merchant needs; a key without READ is refused (DESIGN §9).

The simulator holds each key to its scopes, as Blink does (DESIGN §6).
"""

from __future__ import annotations

import pytest

from tests.fixtures.payments import sale_body
from tests.test_no_merchant_key_at_rest import account_with_scopes, forward

# --- READ is enough; without READ the key is refused --------------------------------------------


def test_a_read_only_merchant_sells_with_tips_and_is_paid(sale_client, sim, tipee):
    shop = account_with_scopes(sim, ["READ"])
    alice = tipee()
    # The simulator really holds the key to READ: it may not even invoice its own wallet.
    refused = sim.graphql(
        "mutation($input: LnInvoiceCreateInput!) { lnInvoiceCreate(input: $input) "
        "{ errors { message } invoice { paymentHash } } }",
        {"input": {"walletId": shop["btcWalletId"], "amount": 10}},
        shop["apiKey"],
    ).json()
    assert refused["errors"][0]["extensions"]["code"] == "NOT_AUTHORIZED"

    created = sale_client.post("/api/blink/create-invoice", json=sale_body(shop, 1200, 200, [alice]))
    assert created.status_code == 200, created.get_json()
    payment_hash = created.get_json()["invoice"]["paymentHash"]
    sim.pay(payment_hash)
    forwarded = forward(sale_client, payment_hash)

    assert forwarded.status_code == 200, forwarded.get_json()
    assert sim.balance(shop["btcWalletId"]) == 1000
    assert sim.balance(alice["btcWalletId"]) == 200


@pytest.mark.parametrize("scopes", [["RECEIVE"], ["RECEIVE", "WRITE"], ["WRITE"]])
def test_a_key_without_read_is_refused_at_create_invoice_with_a_clear_code(sale_client, sim, scopes):
    shop = account_with_scopes(sim, scopes)
    ledger_before = len(sim.ledger())

    response = sale_client.post("/api/blink/create-invoice", json=sale_body(shop, 500))

    assert response.status_code == 400
    body = response.get_json()
    assert body["code"] == "merchant_key_cannot_read"
    assert "READ" in body["error"]
    assert len(sim.ledger()) == ledger_before
