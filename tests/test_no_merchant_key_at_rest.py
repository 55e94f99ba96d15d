"""The service keeps no merchant key (DESIGN §9) and a READ-only key is all a merchant needs.

The base leg is invoiced on the merchant's wallet on its behalf, like a tip, so the merchant's
key is used only inside create-invoice (Blink's `me`) and then forgotten. After whole sales,
no response, log line, Postgres row or Redis value holds a merchant key in any form.
"""

from __future__ import annotations

import base64
import logging
import secrets
import string
import time
import urllib.parse

import psycopg
import redis

from blinksim.control import SimControl
from service.logging import JsonFormatter
from service.store import keys
from tests.fixtures.payments import sale_body
from tests.test_split_store import sql_for_tests

REAL_SHAPE_ALPHABET = string.ascii_letters + string.digits


def blink_shaped_key() -> str:
    """A key shaped as Blink issues them: `blink_` and 64 letters and digits."""
    return "blink_" + "".join(secrets.choice(REAL_SHAPE_ALPHABET) for _ in range(64))


def simulator_shaped_key() -> str:
    return "blink_" + secrets.token_urlsafe(36)


def account_with_scopes(sim: SimControl, scopes: list[str]) -> dict:
    return sim.create_account(balance=0, scopes=scopes)


def forward(client, payment_hash: str):
    return client.post("/api/blink/forward-with-tips", json={"paymentHash": payment_hash})


# --- nothing anywhere holds a merchant key --------------------------------------------------------


def forms_of(key: str) -> list[str]:
    """The key as text could carry it: whole, encoded, and every 12-character piece of its secret."""
    secret = key.removeprefix("blink_")
    pieces = [secret[i : i + 12] for i in range(len(secret) - 11)]
    encoded = [
        base64.b64encode(key.encode()).decode(),
        base64.urlsafe_b64encode(key.encode()).decode().rstrip("="),
        urllib.parse.quote(key, safe=""),
        key.encode().hex(),
    ]
    return [key, key.lower(), key.upper(), *encoded, *pieces]


def redis_text(url: str) -> str:
    client = redis.Redis.from_url(url)
    try:
        parts = []
        for name in client.scan_iter("*"):
            parts.append(name.decode(errors="replace"))
            kind = client.type(name).decode()
            if kind == "string":
                parts.append(client.get(name).decode(errors="replace"))
            elif kind == "hash":
                parts.extend(f"{k!r}{v!r}" for k, v in client.hgetall(name).items())
            elif kind in ("list", "set", "zset"):
                parts.append(repr(client.dump(name)))
        return "\n".join(parts)
    finally:
        client.close()


def postgres_text(url: str) -> str:
    statements = sql_for_tests()
    with psycopg.connect(url, autocommit=True) as conn:
        statements.create_text_dump_function.run(conn)
        return "\n".join(row["row_text"] for row in statements.database_text_dump.all(conn))


def test_after_whole_sales_no_response_log_row_or_redis_value_holds_a_merchant_key(
    sale_app, sim, tipee, clean_db, clean_redis, capfd, caplog
):
    caplog.set_level(logging.DEBUG)
    client = sale_app.test_client()
    full = sim.create_account(balance=0)
    read_only = account_with_scopes(sim, ["READ"])
    alice = tipee()
    strangers = [blink_shaped_key(), simulator_shaped_key()]
    responses = []

    def keep(response):
        responses.append(response.get_data(as_text=True) + repr(dict(response.headers)))
        return response

    for shop in (full, read_only):
        created = keep(client.post("/api/blink/create-invoice", json=sale_body(shop, 1500, 300, [alice])))
        payment_hash = created.get_json()["invoice"]["paymentHash"]
        keep(forward(client, payment_hash))  # not paid yet
        sim.pay(payment_hash)
        plain = keep(client.post("/api/blink/create-invoice", json=sale_body(shop, 700)))
        plain_hash = plain.get_json()["invoice"]["paymentHash"]
        sim.pay(plain_hash)
        owner = {"paymentHash": plain_hash, "userWalletId": shop["btcWalletId"]}
        keep(client.post("/api/blink/forward-payment", json={**owner, "userApiKey": shop["apiKey"]}))
        for status_key in (shop["apiKey"], *strangers):
            keep(client.get(f"/api/payment-status/{payment_hash}", headers={"X-API-KEY": status_key}))
        for path in ("/api/reports/summary", "/api/reports/tips", "/api/reports/sales.csv"):
            keep(client.get(path, headers={"X-API-KEY": shop["apiKey"]}))
        # Keys of both shapes where a stranger would put them.
        for key in strangers:
            keep(client.post("/api/blink/create-invoice", json=sale_body(shop, 100, apiKey=key)))
            keep(client.post("/api/blink/forward-payment", json={**owner, "userApiKey": key}))
            keep(client.get("/api/reports/tips", headers={"X-API-KEY": key}))
        time.sleep(keys.SHARED_ANSWER_TTL_MS / 1000)  # the shared "not paid" answer expires
        assert keep(forward(client, payment_hash)).status_code == 200

    assert sim.balance(full["btcWalletId"]) == sim.balance(read_only["btcWalletId"]) == 1200 + 700

    captured = capfd.readouterr()
    formatter = JsonFormatter()
    logs = (
        captured.out
        + captured.err
        + "\n".join(formatter.format(record) + repr(vars(record)) for record in caplog.records)
    )
    places = {
        "responses": "\n".join(responses),
        "logs": logs,
        "postgres": postgres_text(clean_db),
        "redis": redis_text(clean_redis),
    }
    assert "invoice_created" in logs and "completed" in places["postgres"]  # really captured
    assert "v1:1:" not in places["postgres"] + places["redis"]  # no ciphertext of a key either
    for key in (full["apiKey"], read_only["apiKey"], *strangers):
        for place, text in places.items():
            leaked = [form for form in forms_of(key) if form in text]
            assert not leaked, (place, len(leaked))
