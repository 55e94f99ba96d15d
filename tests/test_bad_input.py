"""Bad input found by probing the running service from outside (issue 13): each is a 4xx with a
stable code, never a 500, and nothing reaches Blink or the log before it is refused."""

from __future__ import annotations

import json
import logging

import pytest

from tests.fixtures.payments import sale_body

JSON_ROUTES = ("/api/blink/create-invoice", "/api/blink/forward-with-tips", "/api/blink/forward-payment")
HUGE = int("9" * 4300)  # the longest integer Python's JSON parser reads


def blink_calls(client) -> float:
    """Calls this app made to Blink so far, from its own /metrics."""
    lines = client.get("/metrics").get_data(as_text=True).splitlines()
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith("blinkpos_blink_requests_total{")
    )


def paid_sale(client, sim, merchant, **extra) -> str:
    response = client.post("/api/blink/create-invoice", json={**sale_body(merchant, 1000), **extra})
    assert response.status_code == 200, response.get_json()
    payment_hash = response.get_json()["invoice"]["paymentHash"]
    sim.pay(payment_hash)
    return payment_hash


def test_memo_with_a_nul_character_is_refused_before_any_call_to_blink(sale_client, merchant):
    before = blink_calls(sale_client)
    response = sale_client.post(
        "/api/blink/create-invoice", json={**sale_body(merchant, 1000), "memo": "a\x00b"}
    )
    assert response.status_code == 400
    assert response.get_json()["code"] == "invalid_memo"
    assert blink_calls(sale_client) == before


def test_memo_with_a_nul_character_on_forward_with_tips_is_refused(sale_client):
    response = sale_client.post(
        "/api/blink/forward-with-tips", json={"paymentHash": "ab" * 32, "memo": "\x00"}
    )
    assert (response.status_code, response.get_json()["code"]) == (400, "invalid_memo")


@pytest.mark.parametrize("depth", [1000, 20_000])
@pytest.mark.parametrize("route", JSON_ROUTES)
def test_json_nested_deeper_than_the_parser_goes_is_invalid_json(sale_client, route, depth):
    body = '{"memo": ' + "[" * depth + "]" * depth + "}"
    response = sale_client.post(route, data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["code"] == "invalid_json"


def test_non_ascii_wallet_id_on_forward_payment_is_a_merchant_mismatch(sale_client, sim, merchant):
    payment_hash = paid_sale(sale_client, sim, merchant)
    body = {
        "paymentHash": payment_hash,
        "userApiKey": merchant["apiKey"],
        "userWalletId": "w\u00e4llet-\u20ac",
    }
    response = sale_client.post("/api/blink/forward-payment", json=body)
    assert (response.status_code, response.get_json()["code"]) == (403, "merchant_mismatch")


@pytest.mark.parametrize("path", ["/api/reports/summary", "/api/reports/tips", "/api/reports/sales.csv"])
@pytest.mark.parametrize(
    "args",
    [
        {"from": "9999-12-31"},
        {"from": "9999-12-31", "to": "9999-12-31"},
        {"to": "9999-12-31", "tz": "Pacific/Kiritimati"},
        {"from": "0001-01-01", "to": "0001-01-01", "tz": "Asia/Tokyo"},
        {"from": "0001-01-01", "to": "0001-01-02", "tz": "America/New_York"},
    ],
)
def test_report_dates_at_the_calendar_edges_are_invalid_dates(sale_client, sim, merchant, path, args):
    paid_sale(sale_client, sim, merchant)  # the key must be a known merchant's to reach the dates
    response = sale_client.get(path, query_string=args, headers={"X-API-KEY": merchant["apiKey"]})
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json()["code"] == "invalid_date"


@pytest.mark.parametrize(
    "share", [1e308, HUGE, 5e-324, 10**6 + 1], ids=["1e308", "4300 digits", "5e-324", "1e6+1"]
)
def test_absurd_shares_are_refused_and_never_echoed(sale_client, merchant, tipee, share):
    body = sale_body(merchant, 1000, tip=100, recipients=[tipee(), tipee()])
    body["tipRecipients"][0]["share"] = share
    response = sale_client.post("/api/blink/create-invoice", json=body)
    assert (response.status_code, response.get_json()["code"]) == (400, "invalid_tip_recipients")
    assert str(share)[:20] not in response.get_data(as_text=True)


def test_total_amount_above_the_invoice_maximum_is_refused_and_not_logged(sale_client, sim, merchant, caplog):
    payment_hash = paid_sale(sale_client, sim, merchant)
    caplog.set_level(logging.DEBUG)
    response = sale_client.post(
        "/api/blink/forward-with-tips", json={"paymentHash": payment_hash, "totalAmount": HUGE}
    )
    assert (response.status_code, response.get_json()["code"]) == (400, "amount_too_large")
    assert "9" * 40 not in caplog.text
    assert "9" * 40 not in response.get_data(as_text=True)
    status = sale_client.get(f"/api/payment-status/{payment_hash}").get_json()
    assert status["status"] == "pending"  # the refused request confirmed and forwarded nothing


@pytest.mark.parametrize(
    ("route", "field"),
    [
        ("/api/blink/create-invoice", "userWalletId"),
        ("/api/blink/create-invoice", "walletId"),
        ("/api/blink/forward-payment", "userWalletId"),
    ],
)
def test_a_lone_surrogate_in_a_wallet_id_is_an_invalid_request(sale_client, merchant, route, field):
    # "\ud800" is valid JSON but no Unicode text: Redis, Postgres and Blink cannot carry it.
    body = {**sale_body(merchant, 1000), "paymentHash": "ab" * 32, "userApiKey": "key", field: "SURROGATE"}
    raw = json.dumps(body).replace('"SURROGATE"', '"w\\ud800"')
    response = sale_client.post(route, data=raw, content_type="application/json")
    assert (response.status_code, response.get_json()["code"]) == (400, "invalid_request")
