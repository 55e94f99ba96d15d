"""A merchant without a Blink key, paid at a Lightning Address (merchantLightningAddress), end to end
against the simulator (its foreign LNURL wallets reached through LNURL_INSECURE_HOSTS) and Postgres."""

from __future__ import annotations

import secrets

import psycopg
import pytest

from tests.fixtures.payments import wait_for_a_fresh_rate_window

URL = "/api/blink/create-invoice"


def new_name() -> str:
    return "shop_" + secrets.token_hex(5)


def sim_host(sim) -> str:
    return sim.url.removeprefix("http://")


def address_sale(address: str, amount: int, tip: int = 0, **extra) -> dict:
    body = {"amount": amount, "currency": "BTC", "memo": "Tea", "merchantLightningAddress": address}
    body.update({"baseAmount": amount - tip, "tipAmount": tip}, **extra)
    return body


@pytest.fixture
def client(make_sale_app, sim):
    return make_sale_app(lnurl_insecure_hosts=(sim_host(sim),)).test_client()


def stored_split(pg_url: str, payment_hash: str) -> tuple:
    with psycopg.connect(pg_url) as conn:
        split = conn.execute(
            "SELECT merchant_wallet_id, merchant_key_fingerprint, merchant_payout_address "
            "FROM payment_splits WHERE payment_hash = %s",
            (payment_hash,),
        ).fetchone()
        legs = conn.execute(
            "SELECT l.kind, l.recipient, l.recipient_wallet_id, l.sats, l.payout FROM payment_legs l "
            "JOIN payment_splits s ON s.id = l.split_id WHERE s.payment_hash = %s ORDER BY l.position",
            (payment_hash,),
        ).fetchall()
    return split, legs


def test_a_sale_paid_to_an_address_is_stored_without_wallet_or_key(client, sim, tipee, pg_url):
    wallet = sim.create_lnurl_wallet(new_name())
    blink_tipee = tipee()
    body = address_sale(
        wallet["lightningAddress"].upper(), 1000, tip=100, tipRecipient=blink_tipee["username"]
    )
    response = client.post(URL, json=body)
    assert response.status_code == 200, response.get_json()
    invoice = response.get_json()["invoice"]
    assert invoice["userWalletId"] is None

    split, legs = stored_split(pg_url, invoice["paymentHash"])
    assert split == (None, None, wallet["lightningAddress"])
    assert legs == [
        ("base", wallet["lightningAddress"], None, 900, "lnurl"),
        ("tip", blink_tipee["username"], blink_tipee["btcWalletId"], 100, "blink"),
    ]
    assert sim.lnurl_wallet(wallet["name"])["payRequests"] == 1


def test_forward_payment_of_a_sale_without_a_merchant_key_is_403(client, sim, merchant):
    wallet = sim.create_lnurl_wallet(new_name())
    invoice = client.post(URL, json=address_sale(wallet["lightningAddress"], 500)).get_json()["invoice"]
    sim.pay(invoice["paymentHash"])
    ledger_size = len(sim.ledger())
    response = client.post(
        "/api/blink/forward-payment",
        json={
            "paymentHash": invoice["paymentHash"],
            "userApiKey": merchant["apiKey"],
            "userWalletId": merchant["btcWalletId"],
        },
    )
    assert response.status_code == 403
    assert response.get_json()["code"] == "merchant_key_not_applicable"
    assert isinstance(response.get_json()["error"], str)
    assert len(sim.ledger()) == ledger_size


def test_a_blink_domain_address_is_that_users_wallet_and_never_fetched(make_sale_app, sim, pg_url):
    host = sim_host(sim)
    shop = sim.create_account(balance=0)
    sim.create_lnurl_wallet(shop["username"])  # same name on the same host: must stay untouched
    app = make_sale_app(lnurl_insecure_hosts=(host,), blink_lightning_domains=("blink.sv", host))
    address = f"{shop['username']}@{host}"
    response = app.test_client().post(URL, json=address_sale(address, 800))
    assert response.status_code == 200, response.get_json()
    split, legs = stored_split(pg_url, response.get_json()["invoice"]["paymentHash"])
    assert split == (None, None, address)
    assert legs == [("base", shop["username"], shop["btcWalletId"], 800, "blink")]
    seen = sim.lnurl_wallet(shop["username"])
    assert seen["payRequests"] == 0 and seen["callbacks"] == 0


@pytest.mark.parametrize(
    ("extra", "code"),
    [
        ({"apiKey": "blink_abc"}, "merchant_destination_conflict"),
        ({"userWalletId": "w1"}, "merchant_destination_conflict"),
        ({"splitProfileId": "0b7c2a4e-1f0e-4c51-9a57-1d1b1f1c1d1e"}, "api_key_required"),
    ],
)
def test_an_address_with_a_key_or_wallet_or_profile_is_refused(client, sim, pg_url, extra, code):
    body = address_sale("shop@example.com", 500, **extra)
    response = client.post(URL, json=body)
    assert response.status_code == 400
    assert response.get_json()["code"] == code
    assert "blink_abc" not in response.get_data(as_text=True)


def test_neither_key_nor_address_is_api_key_required(client):
    response = client.post(URL, json={"amount": 500, "userWalletId": "w1"})
    assert response.status_code == 400 and response.get_json()["code"] == "api_key_required"


@pytest.mark.parametrize(
    ("settings", "code"),
    [
        ({"mode": "error", "step": "payRequest"}, "recipient_invalid"),
        ({"mode": "min_above_amount"}, "recipient_amount_out_of_range"),
        ({"mode": "redirect"}, "recipient_unreachable"),
    ],
)
def test_an_unfit_merchant_address_refuses_the_sale_naming_it(client, sim, pg_url, settings, code):
    wallet = sim.create_lnurl_wallet(new_name(), **settings)
    response = client.post(URL, json=address_sale(wallet["lightningAddress"], 500))
    assert response.status_code == 400
    payload = response.get_json()
    assert payload["code"] == code
    assert payload["details"]["recipient"] == wallet["lightningAddress"]
    assert payload["details"]["field"] == "merchantLightningAddress"
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM payment_splits").fetchone()[0] == 0


def test_a_merchant_address_naming_no_blink_user_says_so_without_calling_it_a_tip(client, pg_url):
    # A newcomer's slip: a bare name where the address belongs is read as a Blink username.
    missing = new_name()
    response = client.post(URL, json=address_sale(missing, 500))
    assert response.status_code == 400
    payload = response.get_json()
    assert payload["code"] == "unknown_tip_recipient"
    assert payload["details"] == {"username": missing, "field": "merchantLightningAddress"}
    assert payload["error"] == f"merchantLightningAddress '{missing}' is not a Blink user with a BTC wallet."


def test_the_per_merchant_rate_limit_keys_on_the_address(make_sale_app, sim):
    wallet = sim.create_lnurl_wallet(new_name())
    other = sim.create_lnurl_wallet(new_name())
    app = make_sale_app(lnurl_insecure_hosts=(sim_host(sim),), rate_limit_per_wallet_per_minute=2)
    client = app.test_client()
    spellings = [wallet["lightningAddress"], wallet["lightningAddress"].upper(), wallet["lnurl"]]
    statuses = [client.post(URL, json=address_sale(s, 300)).status_code for s in spellings]
    assert statuses == [200, 200, 429]
    assert client.post(URL, json=address_sale(other["lightningAddress"], 300)).status_code == 200


def test_strangers_naming_a_merchants_address_cannot_lock_the_merchant_out(make_sale_app, sim):
    # Nothing proves who owns an address, so anyone may name it; a stranger's flood of sales to
    # it must not use up the merchant's own allowance.
    wallet = sim.create_lnurl_wallet(new_name())
    app = make_sale_app(lnurl_insecure_hosts=(sim_host(sim),), rate_limit_per_wallet_per_minute=2)
    stranger, shop = app.test_client(), app.test_client()
    stranger.environ_base["REMOTE_ADDR"] = "203.0.113.7"
    shop.environ_base["REMOTE_ADDR"] = "198.51.100.20"
    wait_for_a_fresh_rate_window()
    sale = address_sale(wallet["lightningAddress"], 300)
    assert [stranger.post(URL, json=sale).status_code for _ in range(3)] == [200, 200, 429]
    assert shop.post(URL, json=sale).status_code == 200


def test_payment_status_of_an_address_sale_names_no_address_even_to_a_key(client, sim, merchant):
    wallet = sim.create_lnurl_wallet(new_name())
    invoice = client.post(URL, json=address_sale(wallet["lightningAddress"], 500)).get_json()["invoice"]
    for headers in ({}, {"X-API-KEY": merchant["apiKey"]}):
        response = client.get(f"/api/payment-status/{invoice['paymentHash']}", headers=headers)
        assert response.status_code == 200
        text = response.get_data(as_text=True)
        assert wallet["name"] not in text and "lnurl" not in text
        leg = response.get_json()["legs"][0]
        assert leg == {"kind": "base", "sats": 500, "status": "planned"}
    forwarded = client.post(
        "/api/blink/forward-with-tips",
        json={"paymentHash": invoice["paymentHash"]},
        headers={"X-API-KEY": merchant["apiKey"]},
    )
    assert forwarded.status_code == 409 and forwarded.get_json()["code"] == "invoice_not_paid"


def forward(client, payment_hash: str):
    return client.post("/api/blink/forward-with-tips", json={"paymentHash": payment_hash})


def test_an_address_merchant_and_a_blink_domain_merchant_are_paid_once_with_fees_in_the_books(
    make_sale_app, sim, tipee, pg_url
):
    host = sim_host(sim)
    # The simulator's host under another name plays Blink's domain; its foreign wallets stay foreign.
    blink_domain = host.replace("127.0.0.1", "localhost")
    wallet = sim.create_lnurl_wallet(new_name())
    shop = sim.create_account(balance=0)
    blink_tipee = tipee()
    app = make_sale_app(lnurl_insecure_hosts=(host,), blink_lightning_domains=("blink.sv", blink_domain))
    client = app.test_client()

    by_address = client.post(
        URL,
        json=address_sale(wallet["lightningAddress"], 1000, tip=100, tipRecipient=blink_tipee["username"]),
    ).get_json()["invoice"]
    by_blink_address = client.post(
        URL, json=address_sale(f"{shop['username']}@{blink_domain}", 800)
    ).get_json()["invoice"]
    for invoice in (by_address, by_blink_address):
        sim.pay(invoice["paymentHash"])
        answer = forward(client, invoice["paymentHash"])
        assert answer.status_code == 200, answer.get_json()
        assert forward(client, invoice["paymentHash"]).get_json()["details"]["alreadyProcessed"] is True

    # 900 sats minus the 9-sat reserve (1 %) reached the foreign wallet; the Blink user got all 800.
    assert sim.lnurl_wallet(wallet["name"])["balance"] == 891
    assert sim.lnurl_wallet(wallet["name"])["callbacks"] == 1
    assert sim.balance(shop["btcWalletId"]) == 800
    assert sim.balance(blink_tipee["btcWalletId"]) == 100
    with psycopg.connect(pg_url) as conn:
        legs = conn.execute(
            "SELECT l.payout, l.sats, l.received_sats, l.fee_sats FROM payment_legs l "
            "JOIN payment_splits s ON s.id = l.split_id WHERE s.payment_hash = %s ORDER BY l.position",
            (by_address["paymentHash"],),
        ).fetchall()
    assert legs[0][:3] == ("lnurl", 900, 891) and 0 <= legs[0][3] <= 9
    assert legs[1] == ("blink", 100, 100, 0)
    status = client.get(f"/api/payment-status/{by_blink_address['paymentHash']}").get_json()
    assert status["status"] == "completed"
