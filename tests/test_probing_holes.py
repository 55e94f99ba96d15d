"""Holes found by probing the running service from outside (issue 13 §3), each closed.

A stranger must not lock a merchant out through the per-wallet limit, guess keys at full
speed, flood Blink through forward-with-tips, or name the POS wallet as a tip recipient.
Real Postgres, Valkey and the simulator; client addresses are set per test client.
"""

from __future__ import annotations

import secrets
import threading
import time

import pytest
from flask import Flask
from flask.testing import FlaskClient

from service.blink.client import OP_INVOICE_STATUS, OP_WALLETS
from tests.fixtures.payments import sale_body

STRANGER = "203.0.113.7"
OTHER_STRANGER = "203.0.113.8"
SHOP = "198.51.100.20"


def sim_shaped_key() -> str:
    return "blink_" + secrets.token_urlsafe(36)


def client_at(app: Flask, address: str) -> FlaskClient:
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def blink_calls(app: Flask, operation: str) -> float:
    counter = app.extensions["blinkpos"].metrics.blink_calls
    return sum(
        sample.value
        for metric in counter.collect()
        for sample in metric.samples
        if sample.name.endswith("_total") and sample.labels.get("operation") == operation
    )


def assert_throttled(response) -> None:
    assert response.status_code == 429
    body = response.get_json()
    assert body["code"] == "too_many_failed_attempts"
    assert isinstance(body["error"], str) and body["error"]
    assert int(response.headers["Retry-After"]) >= 1


# --- the per-wallet limit and failed key checks at create-invoice ------------------------------


def test_wrong_keys_naming_a_wallet_never_lock_its_merchant_out(make_sale_app, merchant):
    app = make_sale_app(rate_limit_per_wallet_per_minute=3, rate_limit_failed_auth_per_minute=1000)
    for address in (STRANGER, OTHER_STRANGER):
        stranger = client_at(app, address)
        for _ in range(4):
            probe = sale_body(merchant, 1000, apiKey=sim_shaped_key())
            assert stranger.post("/api/blink/create-invoice", json=probe).status_code == 400

    shop = client_at(app, SHOP)
    for _ in range(3):
        response = shop.post("/api/blink/create-invoice", json=sale_body(merchant, 1000))
        assert response.status_code == 200, response.get_json()
    # The limit still holds for requests whose key was verified for the wallet.
    over = shop.post("/api/blink/create-invoice", json=sale_body(merchant, 1000))
    assert over.status_code == 429
    assert over.get_json()["details"]["scope"] == "wallet"


def test_failed_key_checks_at_create_invoice_are_throttled_per_client_address(make_sale_app, merchant):
    app = make_sale_app(rate_limit_failed_auth_per_minute=3)
    stranger = client_at(app, STRANGER)
    for _ in range(3):
        probe = sale_body(merchant, 1000, apiKey=sim_shaped_key())
        assert stranger.post("/api/blink/create-invoice", json=probe).get_json()["code"] == (
            "invalid_merchant_api_key"
        )
    asked = blink_calls(app, OP_WALLETS)
    assert_throttled(stranger.post("/api/blink/create-invoice", json=sale_body(merchant, 1000)))
    assert blink_calls(app, OP_WALLETS) == asked  # a throttled guess never reaches Blink

    elsewhere = client_at(app, SHOP).post("/api/blink/create-invoice", json=sale_body(merchant, 1000))
    assert elsewhere.status_code == 200


# --- key guessing on every key-authenticated endpoint -------------------------------------------


def _report_probe(client: FlaskClient, key: str, _merchant: dict, _hash: str):
    return client.get("/api/reports/tips", headers={"X-API-KEY": key})


def _csv_probe(client: FlaskClient, key: str, _merchant: dict, _hash: str):
    return client.get("/api/reports/sales.csv", headers={"X-API-KEY": key})


def _forward_payment_probe(client: FlaskClient, key: str, merchant: dict, payment_hash: str):
    body = {"paymentHash": payment_hash, "userApiKey": key, "userWalletId": merchant["btcWalletId"]}
    return client.post("/api/blink/forward-payment", json=body)


def _status_probe(client: FlaskClient, key: str, _merchant: dict, payment_hash: str):
    return client.get(f"/api/payment-status/{payment_hash}", headers={"X-API-KEY": key})


@pytest.mark.parametrize(
    ("probe", "refused"),
    [(_report_probe, 401), (_csv_probe, 401), (_forward_payment_probe, 403), (_status_probe, 200)],
    ids=["reports", "sales-csv", "forward-payment", "payment-status"],
)
def test_key_guessing_is_throttled_per_client_address(make_sale_app, merchant, probe, refused):
    app = make_sale_app(rate_limit_failed_auth_per_minute=5)
    sale = client_at(app, SHOP).post("/api/blink/create-invoice", json=sale_body(merchant, 1000))
    payment_hash = sale.get_json()["invoice"]["paymentHash"]

    stranger = client_at(app, STRANGER)
    for _ in range(5):
        assert probe(stranger, sim_shaped_key(), merchant, payment_hash).status_code == refused
    assert_throttled(probe(stranger, sim_shaped_key(), merchant, payment_hash))
    # Once throttled, even a right key from that address waits: guessing gains nothing.
    assert_throttled(probe(stranger, merchant["apiKey"], merchant, payment_hash))
    # Another address is not affected.
    assert probe(client_at(app, OTHER_STRANGER), sim_shaped_key(), merchant, payment_hash).status_code == (
        refused
    )


def test_right_keys_do_not_count_as_failed_attempts(make_sale_app, merchant):
    app = make_sale_app(rate_limit_failed_auth_per_minute=2)
    shop = client_at(app, SHOP)
    assert shop.post("/api/blink/create-invoice", json=sale_body(merchant, 1000)).status_code == 200
    for _ in range(6):
        assert shop.get("/api/reports/tips", headers={"X-API-KEY": merchant["apiKey"]}).status_code == 200


# --- forward-with-tips floods -------------------------------------------------------------------


def _pending_sale(app: Flask, merchant: dict) -> str:
    sale = client_at(app, SHOP).post("/api/blink/create-invoice", json=sale_body(merchant, 1000))
    return sale.get_json()["invoice"]["paymentHash"]


def test_forward_with_tips_is_rate_limited_per_client(make_sale_app, merchant):
    app = make_sale_app(rate_limit_forward_per_ip_per_minute=4, rate_limit_forward_per_hash_per_minute=1000)
    hashes = [_pending_sale(app, merchant) for _ in range(5)]
    stranger = client_at(app, STRANGER)
    answers = [stranger.post("/api/blink/forward-with-tips", json={"paymentHash": h}) for h in hashes]
    assert [a.status_code for a in answers] == [409, 409, 409, 409, 429]
    assert answers[-1].get_json()["code"] == "rate_limited"
    assert answers[-1].get_json()["details"]["scope"] == "ip"
    assert int(answers[-1].headers["Retry-After"]) >= 1
    other = client_at(app, OTHER_STRANGER).post(
        "/api/blink/forward-with-tips", json={"paymentHash": hashes[0]}
    )
    assert other.status_code == 409


def test_forward_with_tips_is_rate_limited_per_payment_hash(make_sale_app, merchant):
    app = make_sale_app(rate_limit_forward_per_ip_per_minute=1000, rate_limit_forward_per_hash_per_minute=3)
    payment_hash = _pending_sale(app, merchant)
    codes = [
        client_at(app, f"203.0.113.{n}").post(
            "/api/blink/forward-with-tips", json={"paymentHash": payment_hash}
        )
        for n in range(10, 14)
    ]
    assert [c.status_code for c in codes] == [409, 409, 409, 429]
    assert codes[-1].get_json()["details"]["scope"] == "payment-hash"


def test_a_flood_on_one_pending_hash_asks_blink_about_once(make_sale_app, merchant, sim):
    app = make_sale_app(
        rate_limit_forward_per_ip_per_minute=1000, rate_limit_forward_per_hash_per_minute=1000
    )
    payment_hash = _pending_sale(app, merchant)
    before = blink_calls(app, OP_INVOICE_STATUS)
    start = threading.Barrier(20)
    codes: list[int] = []

    def call(n: int) -> None:
        client = client_at(app, f"203.0.113.{100 + n}")
        start.wait()
        codes.append(
            client.post("/api/blink/forward-with-tips", json={"paymentHash": payment_hash}).status_code
        )

    threads = [threading.Thread(target=call, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert codes == [409] * 20
    assert blink_calls(app, OP_INVOICE_STATUS) - before <= 2

    # The shared answer is short-lived: a check a few seconds later asks Blink again and sees
    # the payment at once.
    time.sleep(2.5)
    sim.pay(payment_hash)
    paid = client_at(app, STRANGER).post("/api/blink/forward-with-tips", json={"paymentHash": payment_hash})
    assert paid.status_code == 200, paid.get_json()


# --- the POS wallet as a tip recipient ------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", "@blink.sv"])
def test_the_pos_wallet_is_refused_as_tip_recipient(make_sale_app, merchant, pos_account, sim, suffix):
    app = make_sale_app()
    ledger_before = len(sim.ledger())
    body = sale_body(merchant, 1000, tip=100, tipRecipient=pos_account["username"] + suffix)
    response = client_at(app, SHOP).post("/api/blink/create-invoice", json=body)
    assert response.status_code == 400
    assert response.get_json()["code"] == "tip_recipient_is_pos_wallet"
    assert len(sim.ledger()) == ledger_before

    listed = sale_body(merchant, 1000, tip=100, recipients=[{"username": pos_account["username"]}])
    assert client_at(app, SHOP).post("/api/blink/create-invoice", json=listed).get_json()["code"] == (
        "tip_recipient_is_pos_wallet"
    )
