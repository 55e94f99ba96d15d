"""The POS endpoints end to end: HTTP in, the simulator's ledger and Postgres/Redis checked out."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import UTC, datetime

import psycopg
import pytest
import redis
import requests

from service.store import keys
from tests.fixtures.payments import sale_body


def create(client, body: dict) -> dict:
    response = client.post("/api/blink/create-invoice", json=body)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["invoice"]


def forward(client, payment_hash: str, **extra):
    return client.post("/api/blink/forward-with-tips", json={"paymentHash": payment_hash, **extra})


def transfers_by_hash(sim) -> Counter:
    return Counter(entry["paymentHash"] for entry in sim.ledger() if entry["paymentHash"])


def merchant_status(client, payment_hash: str, merchant: dict) -> dict:
    """payment-status as the merchant sees it (its own key: legs with invoices and retries)."""
    headers = {"X-API-KEY": merchant["apiKey"]}
    return client.get(f"/api/payment-status/{payment_hash}", headers=headers).get_json()


def wait_for_retries_due(client, payment_hash: str, merchant: dict) -> None:
    """Sleep until every failed leg's backoff has passed (the forwarder respects it)."""
    legs = merchant_status(client, payment_hash, merchant)["legs"]
    due = [datetime.fromisoformat(leg["nextAttemptAt"]) for leg in legs if leg["nextAttemptAt"]]
    if due:
        time.sleep(max(0.0, (max(due) - datetime.now(UTC)).total_seconds()) + 0.05)


def leg_hashes(client, payment_hash: str, merchant: dict) -> list[str]:
    status = merchant_status(client, payment_hash, merchant)
    return [leg["paymentHash"] for leg in status["legs"]]


def test_sale_with_three_way_tip_moves_every_sat_exactly_once(
    sale_client, sim, pos_account, merchant, tipee, pg_url, redis_url
):
    recipients = [tipee(), tipee(), tipee()]
    pos_before = sim.balance(pos_account["btcWalletId"])

    invoice = create(sale_client, sale_body(merchant, 1000, tip=151, recipients=recipients))
    assert invoice["satoshis"] == 1000 and invoice["tipAmount"] == 151 and invoice["hasTip"] is True
    assert [r["sats"] for r in invoice["tipRecipients"]] == [51, 50, 50]
    assert "apiKey" not in str(invoice) and merchant["apiKey"] not in str(invoice)
    sim.pay(invoice["paymentHash"])

    response = forward(sale_client, invoice["paymentHash"])
    assert response.status_code == 200, response.get_json()
    details = response.get_json()["details"]
    assert details["forwardedAmount"] == 849 and details["alreadyProcessed"] is False

    assert sim.balance(merchant["btcWalletId"]) == 849
    assert [sim.balance(r["btcWalletId"]) for r in recipients] == [51, 50, 50]
    assert sim.balance(pos_account["btcWalletId"]) == pos_before

    status = sale_client.get(f"/api/payment-status/{invoice['paymentHash']}").get_json()
    assert status["status"] == "completed"
    assert all(leg["status"] == "succeeded" for leg in status["legs"])
    assert redis.Redis.from_url(redis_url).exists(keys.tip(invoice["paymentHash"])) == 0

    with psycopg.connect(pg_url) as conn:
        events = [
            row[0]
            for row in conn.execute(
                "SELECT e.event_type FROM payment_events e JOIN payment_splits s ON s.id = e.split_id "
                "WHERE s.payment_hash = %s ORDER BY e.id",
                (invoice["paymentHash"],),
            )
        ]
        stats = dict(
            conn.execute(
                "SELECT username, total_sats FROM tip_recipients_stats WHERE username = ANY(%s)",
                ([r["username"] for r in recipients],),
            ).fetchall()
        )
    assert events[0] == "created" and events[1] == "paid" and events[-1] == "completed"
    assert events.count("leg_paid") == 4
    assert stats == {
        recipients[0]["username"]: 51,
        recipients[1]["username"]: 50,
        recipients[2]["username"]: 50,
    }


def test_repeat_forward_answers_already_processed_and_moves_nothing(sale_client, sim, merchant, tipee):
    invoice = create(sale_client, sale_body(merchant, 500, tip=50, recipients=[tipee()]))
    sim.pay(invoice["paymentHash"])
    assert forward(sale_client, invoice["paymentHash"]).status_code == 200
    ledger_size = len(sim.ledger())

    again = forward(sale_client, invoice["paymentHash"])
    assert again.status_code == 200
    assert again.get_json()["details"]["alreadyProcessed"] is True
    assert len(sim.ledger()) == ledger_size


def test_forward_before_payment_is_refused_and_moves_nothing(sale_client, sim, merchant):
    invoice = create(sale_client, sale_body(merchant, 700))
    ledger_size = len(sim.ledger())

    response = forward(sale_client, invoice["paymentHash"])
    assert response.status_code == 409
    assert response.get_json()["code"] == "invoice_not_paid"
    assert len(sim.ledger()) == ledger_size
    assert sim.balance(merchant["btcWalletId"]) == 0


def test_inflated_total_amount_is_ignored(sale_client, sim, merchant):
    invoice = create(sale_client, sale_body(merchant, 300))
    sim.pay(invoice["paymentHash"])

    response = forward(sale_client, invoice["paymentHash"], totalAmount=1_000_000)
    assert response.status_code == 200
    assert sim.balance(merchant["btcWalletId"]) == 300


def test_unknown_payment_hash_is_404(sale_client):
    response = forward(sale_client, "ab" * 32)
    assert response.status_code == 404
    assert response.get_json()["code"] == "split_not_found"


def test_forward_payment_requires_a_payment_hash(sale_client, merchant):
    response = sale_client.post(
        "/api/blink/forward-payment",
        json={"amount": 5000, "userApiKey": merchant["apiKey"], "userWalletId": merchant["btcWalletId"]},
    )
    assert response.status_code == 400
    assert response.get_json()["code"] == "payment_hash_required"


def test_forward_payment_to_another_merchant_is_forbidden(sale_client, sim, merchant):
    other = sim.create_account(balance=0)
    invoice = create(sale_client, sale_body(merchant, 400))
    sim.pay(invoice["paymentHash"])

    for wallet, key in (
        (other["btcWalletId"], merchant["apiKey"]),
        (merchant["btcWalletId"], other["apiKey"]),
    ):
        response = sale_client.post(
            "/api/blink/forward-payment",
            json={"paymentHash": invoice["paymentHash"], "userApiKey": key, "userWalletId": wallet},
        )
        assert response.status_code == 403
        assert response.get_json()["code"] == "merchant_mismatch"
    assert sim.balance(other["btcWalletId"]) == 0
    assert sim.balance(merchant["btcWalletId"]) == 0


def test_forward_payment_by_the_merchant_forwards_base_and_tips(sale_client, sim, merchant, tipee):
    recipient = tipee()
    invoice = create(sale_client, sale_body(merchant, 1000, tip=100, recipients=[recipient]))
    sim.pay(invoice["paymentHash"])

    response = sale_client.post(
        "/api/blink/forward-payment",
        json={
            "paymentHash": invoice["paymentHash"],
            "userApiKey": merchant["apiKey"],
            "userWalletId": merchant["btcWalletId"],
            "amount": 999_999,
        },
    )
    assert response.status_code == 200, response.get_json()
    assert sim.balance(merchant["btcWalletId"]) == 900
    assert sim.balance(recipient["btcWalletId"]) == 100


def test_fifty_concurrent_forwards_pay_each_leg_exactly_once(live_server, sim, pos_account, merchant, tipee):
    recipients = [tipee(), tipee()]
    pos_before = sim.balance(pos_account["btcWalletId"])
    invoice = requests.post(
        f"{live_server.url}/api/blink/create-invoice",
        json=sale_body(merchant, 2000, tip=200, recipients=recipients),
        timeout=10,
    ).json()["invoice"]
    sim.pay(invoice["paymentHash"])

    statuses: list[int] = []
    barrier = threading.Barrier(50)

    def call(i: int) -> None:
        barrier.wait()
        if i % 2:
            body = {
                "paymentHash": invoice["paymentHash"],
                "userApiKey": merchant["apiKey"],
                "userWalletId": merchant["btcWalletId"],
            }
            url = f"{live_server.url}/api/blink/forward-payment"
        else:
            body = {"paymentHash": invoice["paymentHash"]}
            url = f"{live_server.url}/api/blink/forward-with-tips"
        statuses.append(requests.post(url, json=body, timeout=30).status_code)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert set(statuses) <= {200, 409} and 200 in statuses
    assert sim.balance(merchant["btcWalletId"]) == 1800
    assert [sim.balance(r["btcWalletId"]) for r in recipients] == [100, 100]
    assert sim.balance(pos_account["btcWalletId"]) == pos_before
    paid = transfers_by_hash(sim)
    status = requests.get(
        f"{live_server.url}/api/payment-status/{invoice['paymentHash']}",
        headers={"X-API-KEY": merchant["apiKey"]},
        timeout=10,
    ).json()
    assert status["status"] == "completed"
    assert [paid[leg["paymentHash"]] for leg in status["legs"]] == [1, 1, 1]


def test_pay_that_times_out_after_blink_took_it_is_paid_once_on_retry(sale_client, sim, merchant, tipee):
    recipient = tipee()
    invoice = create(sale_client, sale_body(merchant, 1000, tip=100, recipients=[recipient]))
    sim.pay(invoice["paymentHash"])
    # Blink performs the first pay but its answer never arrives within the 2 s read timeout.
    sim.fault("lnInvoicePaymentSend", "timeout", count=1, delay_ms=4000)

    first = forward(sale_client, invoice["paymentHash"])
    assert first.status_code == 504
    body = first.get_json()
    assert body["code"] == "forwarding_incomplete" and body["details"]["retryable"] is True

    wait_for_retries_due(sale_client, invoice["paymentHash"], merchant)
    second = forward(sale_client, invoice["paymentHash"])
    assert second.status_code == 200, second.get_json()
    assert sim.balance(merchant["btcWalletId"]) == 900
    assert sim.balance(recipient["btcWalletId"]) == 100
    paid = transfers_by_hash(sim)
    assert [paid[h] for h in leg_hashes(sale_client, invoice["paymentHash"], merchant)] == [1, 1]


def test_failed_tip_leg_is_not_reported_complete_and_is_retried(sale_client, sim, merchant, tipee):
    recipient = tipee()
    invoice = create(sale_client, sale_body(merchant, 1000, tip=100, recipients=[recipient]))
    sim.pay(invoice["paymentHash"])
    sim.fault("lnInvoicePaymentSend", "error", count=2)

    first = forward(sale_client, invoice["paymentHash"])
    assert first.status_code == 502
    status = sale_client.get(f"/api/payment-status/{invoice['paymentHash']}").get_json()
    assert status["status"] == "forwarding"
    assert [leg["status"] for leg in status["legs"]] == ["failed", "failed"]

    # Asking again before the backoff has passed attempts nothing...
    ledger_size = len(sim.ledger())
    early = forward(sale_client, invoice["paymentHash"])
    assert early.status_code == 502
    assert [leg["status"] for leg in early.get_json()["details"]["legs"]] == ["failed", "failed"]
    assert [
        leg["attempts"] for leg in merchant_status(sale_client, invoice["paymentHash"], merchant)["legs"]
    ] == [
        1,
        1,
    ]
    assert len(sim.ledger()) == ledger_size
    # ...and once it has, the legs are paid.
    wait_for_retries_due(sale_client, invoice["paymentHash"], merchant)
    second = forward(sale_client, invoice["paymentHash"])
    assert second.status_code == 200, second.get_json()
    assert sim.balance(merchant["btcWalletId"]) == 900
    assert sim.balance(recipient["btcWalletId"]) == 100


def test_whole_sale_completes_with_redis_stopped(
    clean_db, sim_clean, sale_config, private_valkey, merchant, tipee
):
    from service import create_app

    app = create_app(sale_config(redis_url=private_valkey.url))
    try:
        client = app.test_client()
        private_valkey.stop()
        recipient = tipee()
        invoice = create(client, sale_body(merchant, 800, tip=80, recipients=[recipient]))
        sim_clean.pay(invoice["paymentHash"])
        assert forward(client, invoice["paymentHash"]).status_code == 200
        assert sim_clean.balance(merchant["btcWalletId"]) == 720
        assert sim_clean.balance(recipient["btcWalletId"]) == 80
    finally:
        app.extensions["blinkpos"].close()


def test_create_invoice_refuses_a_wallet_the_key_does_not_own(sale_client, sim, merchant):
    other = sim.create_account(balance=0)
    ledger_size = len(sim.ledger())
    body = sale_body(merchant, 500)
    body["userWalletId"] = other["btcWalletId"]
    response = sale_client.post("/api/blink/create-invoice", json=body)
    assert response.status_code == 400
    assert response.get_json()["code"] == "merchant_wallet_mismatch"
    assert len(sim.ledger()) == ledger_size


def test_create_invoice_refuses_an_unknown_tip_recipient(sale_client, merchant, pg_url):
    body = sale_body(merchant, 500, tip=50)
    body["tipRecipients"] = [{"username": "nobody_here_at_all", "share": 1}]
    response = sale_client.post("/api/blink/create-invoice", json=body)
    assert response.status_code == 400
    assert response.get_json()["code"] == "unknown_tip_recipient"
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM payment_splits").fetchone()[0] == 0


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"currency": "BTC"}, "amount_required"),
        ({"amount": -5}, "invalid_amount"),
        ({"amount": 1, "baseAmount": 5000}, "invalid_base_amount"),
        ({"amount": 1000, "tipAmount": 200, "baseAmount": 900}, "tip_amount_mismatch"),
        ({"amount": 1000, "tipAmount": 100}, "tip_recipient_required"),
        ({"amount": 1000, "currency": "DOGE"}, "unsupported_currency"),
        ({"amount": 1000, "memo": "x" * 640}, "memo_too_long"),
    ],
)
def test_bad_create_invoice_bodies_get_their_codes(sale_client, merchant, body, code):
    full = {"apiKey": merchant["apiKey"], "userWalletId": merchant["btcWalletId"], **body}
    response = sale_client.post("/api/blink/create-invoice", json=full)
    assert response.status_code == 400
    assert response.get_json()["code"] == code


def test_body_that_is_not_json_is_refused(sale_client):
    bad = sale_client.post("/api/blink/create-invoice", data="{nope", content_type="application/json")
    assert bad.status_code == 400 and bad.get_json()["code"] == "invalid_json"
    form = sale_client.post("/api/blink/create-invoice", data="amount=1", content_type="text/plain")
    assert form.status_code == 415
    huge = sale_client.post(
        "/api/blink/create-invoice", data="[" + "1," * 40000 + "1]", content_type="application/json"
    )
    assert huge.status_code == 413


def test_rate_limit_per_wallet_answers_429_with_retry_after(
    clean_db, clean_redis, sim_clean, sale_config, merchant
):
    from service import create_app

    app = create_app(sale_config(rate_limit_per_wallet_per_minute=2))
    try:
        client = app.test_client()
        codes = [
            client.post("/api/blink/create-invoice", json=sale_body(merchant, 100)).status_code
            for _ in range(3)
        ]
        assert codes == [200, 200, 429]
        limited = client.post("/api/blink/create-invoice", json=sale_body(merchant, 100))
        assert int(limited.headers["Retry-After"]) >= 1
        assert limited.get_json()["code"] == "rate_limited"
    finally:
        app.extensions["blinkpos"].close()


def test_cors_allows_only_configured_origins(clean_db, clean_redis, sim_clean, sale_config):
    from service import create_app

    app = create_app(sale_config(cors_allowed_origins=("https://pos.example",)))
    try:
        client = app.test_client()
        allowed = client.options(
            "/api/blink/create-invoice",
            headers={"Origin": "https://pos.example", "Access-Control-Request-Method": "POST"},
        )
        assert allowed.headers.get("Access-Control-Allow-Origin") == "https://pos.example"
        other = client.options(
            "/api/blink/create-invoice",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )
        assert "Access-Control-Allow-Origin" not in other.headers
    finally:
        app.extensions["blinkpos"].close()


def test_payment_status_shows_no_secrets(sale_client, merchant):
    invoice = create(sale_client, sale_body(merchant, 250))
    response = sale_client.get(f"/api/payment-status/{invoice['paymentHash']}")
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert merchant["apiKey"] not in text and "ciphertext" not in text
    assert response.get_json()["status"] == "pending"


def test_rate_limit_per_address_uses_the_client_behind_the_load_balancer(
    clean_db, clean_redis, sim_clean, sale_config, merchant
):
    from service import create_app

    app = create_app(sale_config(rate_limit_per_ip_per_minute=1, trusted_proxy_count=1))
    try:
        client = app.test_client()

        def sale_from(address: str) -> int:
            response = client.post(
                "/api/blink/create-invoice",
                json=sale_body(merchant, 100),
                headers={"X-Forwarded-For": address},
            )
            return response.status_code

        assert [sale_from("198.51.100.7"), sale_from("203.0.113.9"), sale_from("198.51.100.7")] == [
            200,
            200,
            429,
        ]
    finally:
        app.extensions["blinkpos"].close()


def test_leg_invoice_that_expired_while_waiting_is_replaced_and_paid_once(sale_client, sim, merchant, tipee):
    recipient = tipee()
    invoice = create(sale_client, sale_body(merchant, 1000, tip=100, recipients=[recipient]))
    sim.pay(invoice["paymentHash"])
    sim.fault("lnInvoicePaymentSend", "error", count=2)
    assert forward(sale_client, invoice["paymentHash"]).status_code == 502
    old_hashes = leg_hashes(sale_client, invoice["paymentHash"], merchant)
    for leg_hash in old_hashes:
        sim.expire(leg_hash)
    wait_for_retries_due(sale_client, invoice["paymentHash"], merchant)

    # The expired invoices are refused by Blink, found EXPIRED, and dropped...
    assert forward(sale_client, invoice["paymentHash"]).status_code == 502
    assert leg_hashes(sale_client, invoice["paymentHash"], merchant) == [None, None]
    wait_for_retries_due(sale_client, invoice["paymentHash"], merchant)
    # ...so the next attempt invoices the legs afresh and pays them.
    assert forward(sale_client, invoice["paymentHash"]).status_code == 200
    new_hashes = leg_hashes(sale_client, invoice["paymentHash"], merchant)
    paid = transfers_by_hash(sim)
    assert [paid[h] for h in old_hashes] == [0, 0]
    assert [paid[h] for h in new_hashes] == [1, 1]
    assert sim.balance(merchant["btcWalletId"]) == 900
    assert sim.balance(recipient["btcWalletId"]) == 100


def test_positive_checks_are_cached_ten_minutes_and_refusals_never(
    sale_client, sim, merchant, tipee, redis_url
):
    recipient = tipee()
    cache = redis.Redis.from_url(redis_url)
    create(sale_client, sale_body(merchant, 500, tip=50, recipients=[recipient]))

    owner_keys = cache.keys("wallet-owner:*")
    assert len(owner_keys) == 1 and 0 < cache.ttl(owner_keys[0]) <= 600
    assert cache.get(keys.recipient_wallet(recipient["username"])) == recipient["btcWalletId"].encode()
    assert 0 < cache.ttl(keys.recipient_wallet(recipient["username"])) <= 600
    assert merchant["apiKey"] not in b"".join(owner_keys).decode()

    # With the answers cached, Blink being unable to answer those questions does not matter.
    sim.fault("me", "error", http_status=503)
    sim.fault("accountDefaultWallet", "error", http_status=503)
    create(sale_client, sale_body(merchant, 600, tip=60, recipients=[recipient]))
    # (The faults do bite: a merchant not seen before cannot be checked.)
    newcomer = sim.create_account(balance=0)
    unchecked = sale_client.post("/api/blink/create-invoice", json=sale_body(newcomer, 600))
    assert unchecked.status_code == 502
    sim.clear_faults()

    refused = sale_body(merchant, 500, tip=50)
    refused["tipRecipients"] = [{"username": "nobody_by_this_name", "share": 1}]
    assert sale_client.post("/api/blink/create-invoice", json=refused).status_code == 400
    assert cache.exists(keys.recipient_wallet("nobody_by_this_name")) == 0
