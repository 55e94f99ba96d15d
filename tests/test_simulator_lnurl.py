"""Foreign LNURL-pay wallets on the simulator, honest and hostile, over real HTTP."""

from __future__ import annotations

import hashlib
import json
import secrets
import time

import bech32
import bolt11
import pytest
import requests


def new_name() -> str:
    return "ext_" + secrets.token_hex(5)


def get(url: str, **params) -> requests.Response:
    return requests.get(url, params=params, timeout=10, allow_redirects=False)


def fetch_invoice(wallet: dict, amount_msat: int, **extra) -> dict:
    pay_request = get(wallet["payRequestUrl"]).json()
    return get(pay_request["callback"], amount=amount_msat, **extra).json()


@pytest.fixture
def lnurl_sim(sim_clean):
    sim_clean.set_fees(1, 5000)
    yield sim_clean
    sim_clean.set_fees(1, 5000)


def test_pay_request_follows_lud06_and_the_addresses_point_at_it(lnurl_sim):
    wallet = lnurl_sim.create_lnurl_wallet(
        new_name(), minSendable=2_000, maxSendable=5_000_000, commentAllowed=40
    )
    host = lnurl_sim.url.removeprefix("http://")

    answer = get(f"{lnurl_sim.url}/.well-known/lnurlp/{wallet['name']}")
    body = answer.json()
    hrp, data = bech32.bech32_decode(wallet["lnurl"])

    assert answer.status_code == 200
    assert body["tag"] == "payRequest" and body["callback"] == wallet["callbackUrl"]
    assert (body["minSendable"], body["maxSendable"], body["commentAllowed"]) == (2_000, 5_000_000, 40)
    assert ["text/plain", f"Payment to {wallet['name']}"] in json.loads(body["metadata"])
    assert wallet["lightningAddress"] == f"{wallet['name']}@{host}"
    assert wallet["payRequestUrl"] == f"{lnurl_sim.url}/.well-known/lnurlp/{wallet['name']}"
    assert hrp == "lnurl" and bytes(bech32.convertbits(data, 5, 8, False)).decode() == wallet["payRequestUrl"]


def test_callback_issues_an_external_invoice_for_the_amount_with_the_metadata_hash(lnurl_sim):
    wallet = lnurl_sim.create_lnurl_wallet(new_name())
    metadata = get(wallet["payRequestUrl"]).json()["metadata"]

    answer = fetch_invoice(wallet, 21_000)
    decoded = bolt11.decode(answer["pr"])

    assert answer["routes"] == []
    assert decoded.currency == "bc" and decoded.amount_msat == 21_000
    assert decoded.description_hash == hashlib.sha256(metadata.encode()).hexdigest()
    assert decoded.payee != lnurl_sim.health()["nodePubkey"]  # signed by a node outside Blink
    assert not decoded.has_expired()
    assert [i["status"] for i in lnurl_sim.lnurl_wallet(wallet["name"])["invoices"]] == [None]  # unpaid


def test_paying_the_invoice_from_blink_credits_the_foreign_wallet_and_costs_a_fee(lnurl_sim):
    wallet = lnurl_sim.create_lnurl_wallet(new_name())
    payer = lnurl_sim.create_account(balance=5_000)
    pr = fetch_invoice(wallet, 1_000_000)["pr"]

    fee = lnurl_sim.fee_probe(payer["apiKey"], payer["btcWalletId"], pr)["amount"]
    first = lnurl_sim.pay_invoice(payer["apiKey"], payer["btcWalletId"], pr)
    again = lnurl_sim.pay_invoice(payer["apiKey"], payer["btcWalletId"], pr)
    after = lnurl_sim.lnurl_wallet(wallet["name"])

    assert fee == 1 + 5  # 1 sat + ceil(1000 * 5000 / 1e6)
    assert (first["status"], again["status"]) == ("SUCCESS", "ALREADY_PAID")
    assert lnurl_sim.balance(payer["btcWalletId"]) == 5_000 - 1_000 - fee
    assert after["balance"] == 1_000
    assert (after["payRequests"], after["callbacks"]) == (1, 1)
    assert after["invoices"][0]["status"] == "SUCCESS"
    [entry] = [t for t in lnurl_sim.ledger() if t["paymentHash"] == after["invoices"][0]["paymentHash"]]
    assert (entry["toWalletId"], entry["sats"], entry["feeSats"]) == (None, 1_000, 6)


def test_callback_refuses_amounts_outside_the_range_and_long_comments(lnurl_sim):
    wallet = lnurl_sim.create_lnurl_wallet(
        new_name(), minSendable=10_000, maxSendable=20_000, commentAllowed=5
    )

    low = get(wallet["callbackUrl"], amount=9_999).json()
    high = get(wallet["callbackUrl"], amount=20_001).json()
    bad = get(wallet["callbackUrl"], amount="1e4").json()
    long_comment = get(wallet["callbackUrl"], amount=10_000, comment="123456").json()
    ok = get(wallet["callbackUrl"], amount=10_000, comment="thx").json()

    assert [a["status"] for a in (low, high, bad, long_comment)] == ["ERROR"] * 4
    assert all(a["reason"] for a in (low, high, bad, long_comment))
    assert "pr" in ok
    state = lnurl_sim.lnurl_wallet(wallet["name"])
    assert state["callbacks"] == 5 and state["comments"] == ["123456", "thx"]


def test_unknown_lnurl_user_is_404_with_an_error_status(lnurl_sim):
    answer = get(f"{lnurl_sim.url}/.well-known/lnurlp/nobody_{secrets.token_hex(4)}")
    assert answer.status_code == 404 and answer.json()["status"] == "ERROR"


# Hostile modes -------------------------------------------------------------------------------------


def test_wrong_amount_mode_issues_an_invoice_for_more_than_asked(lnurl_sim):
    wallet = lnurl_sim.create_lnurl_wallet(new_name(), mode="wrong_amount")
    assert bolt11.decode(fetch_invoice(wallet, 5_000)["pr"]).amount_msat == 6_000


def test_amountless_mode_issues_an_invoice_without_amount_that_blink_will_not_pay(lnurl_sim):
    wallet = lnurl_sim.create_lnurl_wallet(new_name(), mode="amountless")
    payer = lnurl_sim.create_account(balance=100)
    pr = fetch_invoice(wallet, 5_000)["pr"]

    result = lnurl_sim.pay_invoice(payer["apiKey"], payer["btcWalletId"], pr)

    assert bolt11.decode(pr).amount_msat is None
    assert result["status"] == "FAILURE" and lnurl_sim.balance(payer["btcWalletId"]) == 100


def test_expired_mode_issues_an_invoice_already_expired_that_cannot_be_paid(lnurl_sim):
    wallet = lnurl_sim.create_lnurl_wallet(new_name(), mode="expired")
    payer = lnurl_sim.create_account(balance=100)
    pr = fetch_invoice(wallet, 5_000)["pr"]

    result = lnurl_sim.pay_invoice(payer["apiKey"], payer["btcWalletId"], pr)

    assert bolt11.decode(pr).has_expired()
    assert result["errors"][0]["code"] == "INVOICE_EXPIRED" and lnurl_sim.balance(payer["btcWalletId"]) == 100
    assert lnurl_sim.lnurl_wallet(wallet["name"])["balance"] == 0


def test_description_modes_put_a_wrong_hash_or_a_plain_description(lnurl_sim):
    mismatch = lnurl_sim.create_lnurl_wallet(new_name(), mode="description_hash_mismatch")
    plain = lnurl_sim.create_lnurl_wallet(new_name(), mode="plain_description")
    metadata = get(mismatch["payRequestUrl"]).json()["metadata"]

    wrong_hash = bolt11.decode(fetch_invoice(mismatch, 1_000)["pr"])
    described = bolt11.decode(fetch_invoice(plain, 1_000)["pr"])

    assert wrong_hash.description_hash not in (None, hashlib.sha256(metadata.encode()).hexdigest())
    assert described.description_hash is None and described.description == f"Payment to {plain['name']}"


@pytest.mark.parametrize("step", ["payRequest", "callback"])
def test_error_mode_answers_status_error_at_the_chosen_step(lnurl_sim, step):
    wallet = lnurl_sim.create_lnurl_wallet(new_name(), mode="error", step=step, httpStatus=503)
    first = get(wallet["payRequestUrl"])
    second = get(wallet["callbackUrl"], amount=1_000)

    failing, working = (first, second) if step == "payRequest" else (second, first)
    assert failing.status_code == 503 and failing.json()["status"] == "ERROR" and failing.json()["reason"]
    assert working.status_code == 200 and "ERROR" not in working.text


def test_min_above_amount_mode_advertises_a_minimum_no_sale_reaches(lnurl_sim):
    wallet = lnurl_sim.create_lnurl_wallet(new_name(), mode="min_above_amount")
    body = get(wallet["payRequestUrl"]).json()
    refused = get(wallet["callbackUrl"], amount=1_000_000).json()
    assert body["minSendable"] >= 100_000_000_000 and refused["status"] == "ERROR"


def test_not_pay_request_mode_answers_another_tag(lnurl_sim):
    wallet = lnurl_sim.create_lnurl_wallet(new_name(), mode="not_pay_request")
    assert get(wallet["payRequestUrl"]).json()["tag"] == "withdrawRequest"


def test_slow_mode_delays_the_answer(lnurl_sim):
    wallet = lnurl_sim.create_lnurl_wallet(new_name(), mode="slow", step="callback", delayMs=700)
    started = time.monotonic()
    get(wallet["payRequestUrl"])
    fast = time.monotonic() - started
    answer = get(wallet["callbackUrl"], amount=1_000)
    assert fast < 0.7 <= time.monotonic() - started and "pr" in answer.json()


def test_oversized_not_json_and_redirect_modes(lnurl_sim):
    oversized = lnurl_sim.create_lnurl_wallet(new_name(), mode="oversized")
    not_json = lnurl_sim.create_lnurl_wallet(new_name(), mode="not_json")
    redirect = lnurl_sim.create_lnurl_wallet(new_name(), mode="redirect", redirectTo="https://evil.example/x")

    big = get(oversized["payRequestUrl"])
    html = get(not_json["callbackUrl"], amount=1_000)
    moved = get(redirect["payRequestUrl"])

    assert len(big.content) > 64 * 1024 and big.json()["tag"] == "payRequest"
    assert html.status_code == 200 and html.headers["Content-Type"].startswith("text/html")
    assert moved.status_code == 302 and moved.headers["Location"] == "https://evil.example/x"


def test_mode_can_be_changed_and_malformed_wallets_are_refused(lnurl_sim):
    wallet = lnurl_sim.create_lnurl_wallet(new_name())
    changed = lnurl_sim.update_lnurl_wallet(wallet["name"], mode="error", step="callback")
    post = lnurl_sim._session.post
    url = lnurl_sim.url + "/sim/lnurl-wallets"

    assert (changed["mode"], changed["step"], changed["minSendable"]) == ("error", "callback", 1_000)
    assert post(url, json={"name": wallet["name"]}, timeout=5).status_code == 409
    for bad in (
        {"name": "Has Space"},
        {"name": new_name(), "mode": "evil"},
        {"name": new_name(), "minSendable": 10, "maxSendable": 5},
        {"name": new_name(), "commentAllowed": -1},
        {"name": new_name(), "redirectTo": "file:///etc/passwd"},
    ):
        answer = post(url, json=bad, timeout=5)
        assert answer.status_code == 400 and answer.json()["code"] == "invalid_lnurl_wallet", bad


def test_held_payment_to_a_foreign_wallet_credits_it_only_when_it_settles(lnurl_sim):
    wallet = lnurl_sim.create_lnurl_wallet(new_name())
    payer = lnurl_sim.create_account(balance=10_000)
    pr = fetch_invoice(wallet, 2_000_000)["pr"]
    lnurl_sim.fault("lnInvoicePaymentSend", "pending_then_success", count=1)

    first = lnurl_sim.pay_invoice(payer["apiKey"], payer["btcWalletId"], pr)
    while_held = lnurl_sim.lnurl_wallet(wallet["name"])
    settled = lnurl_sim.settle(bolt11.decode(pr).payment_hash)
    after = lnurl_sim.lnurl_wallet(wallet["name"])

    assert first["status"] == "PENDING"
    assert while_held["balance"] == 0 and while_held["invoices"][0]["status"] == "PENDING"
    assert settled["status"] == "SUCCESS"
    assert after["balance"] == 2_000 and after["invoices"][0]["status"] == "SUCCESS"
    assert lnurl_sim.balance(payer["btcWalletId"]) == 10_000 - 2_000 - 11
