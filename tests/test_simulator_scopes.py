"""API key scopes on the simulator: READ, RECEIVE, WRITE, refused the way Blink's shield refuses."""

from __future__ import annotations

import pytest

ME = "query { me { defaultAccount { wallets { id balance } } } }"
AUTHORIZATION = "query { authorization { scopes } }"
PAY = """
mutation Pay($input: LnInvoicePaymentInput!) {
  lnInvoicePaymentSend(input: $input) { errors { message code } status }
}"""
CREATE = """
mutation Create($input: LnInvoiceCreateInput!) {
  lnInvoiceCreate(input: $input) { errors { message code } invoice { paymentHash } }
}"""


def assert_not_authorized(response, field: str) -> None:
    assert response.status_code == 200
    body = response.json()
    assert (body["data"] or {}).get(field) is None
    assert [(e["extensions"]["code"], e["path"]) for e in body["errors"]] == [("NOT_AUTHORIZED", [field])]
    assert body["errors"][0]["message"] == "Not authorized"


def test_a_new_key_has_every_scope_by_default(sim_clean):
    account = sim_clean.create_account()
    answer = sim_clean.graphql(AUTHORIZATION, api_key=account["apiKey"]).json()
    assert account["scopes"] == ["READ", "RECEIVE", "WRITE"]
    assert answer == {"data": {"authorization": {"scopes": ["READ", "RECEIVE", "WRITE"]}}}


def test_read_only_key_reads_but_cannot_invoice_or_pay_and_nothing_moves(sim_clean):
    reader = sim_clean.create_account(balance=500, scopes=["READ"])
    merchant = sim_clean.create_account()
    invoice = sim_clean.create_invoice(merchant["apiKey"], merchant["btcWalletId"], 100)["invoice"]

    me = sim_clean.graphql(ME, api_key=reader["apiKey"]).json()
    create = sim_clean.graphql(
        CREATE, {"input": {"walletId": reader["btcWalletId"], "amount": 10}}, api_key=reader["apiKey"]
    )
    pay = sim_clean.graphql(
        PAY,
        {"input": {"walletId": reader["btcWalletId"], "paymentRequest": invoice["paymentRequest"]}},
        api_key=reader["apiKey"],
    )

    assert me["data"]["me"]["defaultAccount"]["wallets"][0]["balance"] == 500
    assert_not_authorized(create, "lnInvoiceCreate")
    assert_not_authorized(pay, "lnInvoicePaymentSend")
    assert sim_clean.balance(reader["btcWalletId"]) == 500
    assert sim_clean.invoice(invoice["paymentHash"])["status"] == "PENDING"
    assert [t for t in sim_clean.ledger() if t["paymentHash"] == invoice["paymentHash"]] == []


def test_receive_only_key_invoices_but_cannot_read(sim_clean):
    receiver = sim_clean.create_account(scopes=["RECEIVE"])
    payload = sim_clean.create_invoice(receiver["apiKey"], receiver["btcWalletId"], 21)
    me = sim_clean.graphql(ME, api_key=receiver["apiKey"])

    assert payload["errors"] == [] and payload["invoice"]["satoshis"] == 21
    assert_not_authorized(me, "me")


def test_write_scope_alone_pays(sim_clean):
    payer = sim_clean.create_account(balance=300, scopes=["WRITE"])
    merchant = sim_clean.create_account()
    invoice = sim_clean.create_invoice(merchant["apiKey"], merchant["btcWalletId"], 120)["invoice"]

    result = sim_clean.pay_invoice(payer["apiKey"], payer["btcWalletId"], invoice["paymentRequest"])

    assert result["status"] == "SUCCESS"
    assert sim_clean.balance(payer["btcWalletId"]) == 180
    assert_not_authorized(sim_clean.graphql(ME, api_key=payer["apiKey"]), "me")


@pytest.mark.parametrize("scopes", [[], ["ADMIN"], "READ", ["READ", 1], [{}]])
def test_malformed_scopes_are_refused(sim_clean, scopes):
    response = sim_clean._session.post(sim_clean.url + "/sim/accounts", json={"scopes": scopes}, timeout=5)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_scopes"
