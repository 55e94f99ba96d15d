"""create-invoice with Lightning Address and LNURL recipients (DESIGN §4, §8), against the simulator's
foreign LNURL wallets over real HTTP (reached through LNURL_INSECURE_HOSTS) and Postgres."""

from __future__ import annotations

import secrets
import time
from fractions import Fraction

import psycopg
import pytest

from service.domain.errors import RecipientRefused, UnknownTipRecipient
from service.domain.model import TipRecipient
from tests.fixtures.payments import sale_body

URL = "/api/blink/create-invoice"
TIMEOUT_SECONDS = 1.0


def new_name() -> str:
    return "ext_" + secrets.token_hex(5)


def sim_host(sim) -> str:
    return sim.url.removeprefix("http://")


@pytest.fixture
def lnurl_client(make_sale_app, sim):
    app = make_sale_app(lnurl_insecure_hosts=(sim_host(sim),), lnurl_timeout_seconds=TIMEOUT_SECONDS)
    return app.test_client()


def stored_legs(pg_url: str, payment_hash: str) -> list[tuple]:
    with psycopg.connect(pg_url) as conn:
        return conn.execute(
            "SELECT l.kind, l.recipient, l.recipient_wallet_id, l.sats, l.payout FROM payment_legs l "
            "JOIN payment_splits s ON s.id = l.split_id WHERE s.payment_hash = %s ORDER BY l.position",
            (payment_hash,),
        ).fetchall()


def split_count(pg_url: str) -> int:
    with psycopg.connect(pg_url) as conn:
        return conn.execute("SELECT count(*) FROM payment_splits").fetchone()[0]


def test_a_lightning_address_tip_is_an_lnurl_leg_resolved_at_sale_time(
    lnurl_client, sim, merchant, tipee, pg_url
):
    wallet = sim.create_lnurl_wallet(new_name())
    blink_tipee = tipee()
    body = sale_body(merchant, 1000, tip=100)
    body["tipRecipients"] = [
        {"username": wallet["lightningAddress"].upper(), "share": 1},
        {"username": blink_tipee["username"], "share": 1},
    ]
    response = lnurl_client.post(URL, json=body)
    assert response.status_code == 200, response.get_json()
    invoice = response.get_json()["invoice"]

    assert stored_legs(pg_url, invoice["paymentHash"]) == [
        ("base", merchant["btcWalletId"], merchant["btcWalletId"], 900, "blink"),
        ("tip", wallet["lightningAddress"], None, 50, "lnurl"),
        ("tip", blink_tipee["username"], blink_tipee["btcWalletId"], 50, "blink"),
    ]
    assert [r["username"] for r in invoice["tipRecipients"]] == [
        wallet["lightningAddress"],
        blink_tipee["username"],
    ]
    seen = sim.lnurl_wallet(wallet["name"])
    assert seen["payRequests"] == 1 and seen["callbacks"] == 0  # resolved now, invoiced at forward time


def test_an_lnurl_string_is_the_same_recipient_as_its_address_and_the_shares_merge(
    lnurl_client, sim, merchant, pg_url
):
    wallet = sim.create_lnurl_wallet(new_name())
    body = sale_body(merchant, 1000, tip=90)
    body["tipRecipients"] = [
        {"username": wallet["lnurl"].upper(), "share": 1},
        {"username": wallet["lightningAddress"], "share": 2},
    ]
    response = lnurl_client.post(URL, json=body)
    assert response.status_code == 200, response.get_json()
    invoice = response.get_json()["invoice"]
    tips = [leg for leg in stored_legs(pg_url, invoice["paymentHash"]) if leg[0] == "tip"]
    assert tips == [("tip", wallet["lightningAddress"], None, 90, "lnurl")]
    assert invoice["tipRecipients"][0]["share"] == 3


def test_a_username_and_its_blink_address_are_one_recipient(sale_client, merchant, tipee, pg_url):
    blink_tipee = tipee()
    body = sale_body(merchant, 1000, tip=100)
    body["tipRecipients"] = [
        {"username": blink_tipee["username"], "share": 1},
        {"username": blink_tipee["username"].upper() + "@blink.sv", "share": 1},
    ]
    response = sale_client.post(URL, json=body)
    assert response.status_code == 200, response.get_json()
    invoice = response.get_json()["invoice"]
    assert stored_legs(pg_url, invoice["paymentHash"])[1:] == [
        ("tip", blink_tipee["username"], blink_tipee["btcWalletId"], 100, "blink")
    ]
    assert invoice["tipRecipients"][0]["share"] == 2


def test_an_address_on_a_blink_domain_is_the_blink_user_and_never_fetched(
    make_sale_app, sim, merchant, pg_url
):
    # The simulator's own host is declared a Blink domain: name@that-host is then the Blink user
    # `name`, although a foreign wallet of the same name answers LNURL there.
    user = sim.create_account(balance=0)
    sim.create_lnurl_wallet(user["username"])
    host = sim_host(sim)
    app = make_sale_app(lnurl_insecure_hosts=(host,), blink_lightning_domains=("blink.sv", host))
    response = app.test_client().post(
        URL, json=sale_body(merchant, 500, tip=50, tipRecipient=f"{user['username']}@{host}")
    )
    assert response.status_code == 200, response.get_json()
    legs = stored_legs(pg_url, response.get_json()["invoice"]["paymentHash"])
    assert legs[1] == ("tip", user["username"], user["btcWalletId"], 50, "blink")
    seen = sim.lnurl_wallet(user["username"])
    assert seen["payRequests"] == 0 and seen["callbacks"] == 0


@pytest.mark.parametrize(
    ("settings", "code", "reason"),
    [
        ({"mode": "error", "step": "payRequest"}, "recipient_invalid", "status_error"),
        ({"mode": "error", "step": "payRequest", "httpStatus": 500}, "recipient_invalid", "status_error"),
        ({"mode": "not_pay_request"}, "recipient_invalid", "wrong_tag"),
        ({"mode": "min_above_amount"}, "recipient_amount_out_of_range", "amount_out_of_range"),
        ({"maxSendable": 10_000}, "recipient_amount_out_of_range", "amount_out_of_range"),
        ({"mode": "oversized"}, "recipient_unreachable", "too_large"),
        ({"mode": "not_json"}, "recipient_unreachable", "not_json"),
        ({"mode": "redirect"}, "recipient_unreachable", "redirect"),
    ],
)
def test_a_hostile_or_unfit_wallet_refuses_the_sale_naming_the_recipient(
    lnurl_client, sim, merchant, pg_url, settings, code, reason
):
    wallet = sim.create_lnurl_wallet(new_name(), **settings)
    ledger_size = len(sim.ledger())
    body = sale_body(merchant, 1000, tip=100, tipRecipient=wallet["lightningAddress"])
    response = lnurl_client.post(URL, json=body)
    payload = response.get_json()
    assert response.status_code == 400, payload
    assert payload["code"] == code and payload["error"]
    assert payload["details"]["recipient"] == wallet["lightningAddress"]
    if reason is not None:
        assert payload["details"]["reason"] == reason
    assert split_count(pg_url) == 0 and len(sim.ledger()) == ledger_size
    assert sim.lnurl_wallet(wallet["name"])["callbacks"] == 0


def test_the_share_minus_the_fee_reserve_must_be_in_range(lnurl_client, sim, merchant):
    # 100 sats minus the reserve (min 3 sats) is 97: a wallet taking at least 98 sats refuses it.
    too_high = sim.create_lnurl_wallet(new_name(), minSendable=98_000)
    body = sale_body(merchant, 1000, tip=100, tipRecipient=too_high["lightningAddress"])
    refused = lnurl_client.post(URL, json=body)
    assert refused.status_code == 400 and refused.get_json()["code"] == "recipient_amount_out_of_range"
    just_fits = sim.create_lnurl_wallet(new_name(), minSendable=97_000)
    body = sale_body(merchant, 1000, tip=100, tipRecipient=just_fits["lightningAddress"])
    assert lnurl_client.post(URL, json=body).status_code == 200


def test_a_slow_wallet_is_unreachable_within_the_timeout(lnurl_client, sim, merchant, pg_url):
    wallet = sim.create_lnurl_wallet(new_name(), mode="slow", delayMs=5_000)
    body = sale_body(merchant, 1000, tip=100, tipRecipient=wallet["lightningAddress"])
    started = time.monotonic()
    response = lnurl_client.post(URL, json=body)
    elapsed = time.monotonic() - started
    assert response.status_code == 400
    assert response.get_json()["code"] == "recipient_unreachable"
    assert response.get_json()["details"]["reason"] == "timeout"
    assert elapsed < TIMEOUT_SECONDS + 2.0
    assert split_count(pg_url) == 0


def test_several_slow_wallets_cost_one_timeout_not_one_each(lnurl_client, sim, merchant):
    slow = [sim.create_lnurl_wallet(new_name(), mode="slow", delayMs=5_000) for _ in range(3)]
    body = sale_body(merchant, 1000, tip=300)
    body["tipRecipients"] = [{"username": wallet["lightningAddress"], "share": 1} for wallet in slow]
    started = time.monotonic()
    response = lnurl_client.post(URL, json=body)
    elapsed = time.monotonic() - started
    assert response.status_code == 400
    assert response.get_json()["code"] == "recipient_unreachable"
    assert response.get_json()["details"]["recipient"] == slow[0]["lightningAddress"]
    assert elapsed < 2 * TIMEOUT_SECONDS + 0.5


def test_a_server_inside_the_network_is_refused_unless_listed(sale_client, sim, merchant, pg_url):
    wallet = sim.create_lnurl_wallet(new_name())
    body = sale_body(merchant, 1000, tip=100, tipRecipient=wallet["lightningAddress"])
    response = sale_client.post(URL, json=body)
    assert response.status_code == 400
    assert response.get_json()["code"] == "recipient_unreachable"
    assert response.get_json()["details"]["reason"] == "forbidden_address"
    assert sim.lnurl_wallet(wallet["name"])["payRequests"] == 0
    assert split_count(pg_url) == 0


@pytest.mark.parametrize(
    "recipient", ["someone@", "a b@example.com", "lnurl1notbech32", "x@hidden.onion", "lnurlp://"]
)
def test_a_malformed_address_is_recipient_invalid(sale_client, merchant, recipient, pg_url):
    body = sale_body(merchant, 1000, tip=100)
    body["tipRecipients"] = [{"username": recipient, "share": 1}]
    response = sale_client.post(URL, json=body)
    assert response.status_code == 400, response.get_json()
    payload = response.get_json()
    assert payload["code"] == "recipient_invalid"
    assert payload["details"]["field"] == "tipRecipients.0.username"
    assert split_count(pg_url) == 0


def test_an_unknown_blink_user_keeps_its_code(sale_client, merchant):
    body = sale_body(merchant, 1000, tip=100, tipRecipient="nobody_here_at_all@blink.sv")
    response = sale_client.post(URL, json=body)
    assert response.status_code == 400 and response.get_json()["code"] == "unknown_tip_recipient"


def test_the_merchant_sees_how_each_leg_is_paid_and_the_public_sees_no_address(lnurl_client, sim, merchant):
    wallet = sim.create_lnurl_wallet(new_name())
    body = sale_body(merchant, 1000, tip=100, tipRecipient=wallet["lightningAddress"])
    invoice = lnurl_client.post(URL, json=body).get_json()["invoice"]
    path = f"/api/payment-status/{invoice['paymentHash']}"

    full = lnurl_client.get(path, headers={"X-API-KEY": merchant["apiKey"]}).get_json()
    assert [(leg["kind"], leg["payout"], leg["recipient"]) for leg in full["legs"]] == [
        ("base", "blink", merchant["btcWalletId"]),
        ("tip", "lnurl", wallet["lightningAddress"]),
    ]
    assert all(leg["receivedSats"] is None and leg["feeSats"] is None for leg in full["legs"])
    assert full["merchantLightningAddress"] is None

    public = lnurl_client.get(path)
    assert wallet["name"] not in public.get_data(as_text=True)
    assert all("payout" not in leg and "recipient" not in leg for leg in public.get_json()["legs"])


def test_saved_recipients_are_checked_merged_and_normalised_by_the_same_planner(make_sale_app, sim, tipee):
    wallet = sim.create_lnurl_wallet(new_name())
    blink_tipee = tipee()
    app = make_sale_app(lnurl_insecure_hosts=(sim_host(sim),))
    planner = app.extensions["blinkpos"].payouts
    checked = planner.check(
        [
            TipRecipient(wallet["lightningAddress"].upper(), Fraction(1)),
            TipRecipient(blink_tipee["username"] + "@blink.sv", Fraction(2)),
            TipRecipient(wallet["lnurl"], Fraction(3)),
        ]
    )
    assert checked == (
        TipRecipient(wallet["lightningAddress"], Fraction(4)),
        TipRecipient(blink_tipee["username"], Fraction(2)),
    )
    with pytest.raises(RecipientRefused) as refused:
        planner.check([TipRecipient(f"gone@{sim_host(sim)}", Fraction(1))])
    assert refused.value.code == "recipient_invalid"
    assert refused.value.details["recipient"] == f"gone@{sim_host(sim)}"
    with pytest.raises(UnknownTipRecipient):
        planner.check([TipRecipient("nobody_here_at_all", Fraction(1))])
