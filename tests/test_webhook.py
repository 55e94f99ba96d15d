"""POST /api/blink/webhook against real Postgres, Valkey and the simulator."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from standardwebhooks import Webhook

from blinksim.control import SimControl
from service import create_app
from tests.fixtures.audit import split_events
from tests.fixtures.payments import sale_body

WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"blinkpos-webhook-test-secret-32b").decode()
WEBHOOK_PATH = "/api/blink/webhook"


@pytest.fixture
def hook_app(clean_db: str, clean_redis: str, sim_clean: SimControl, sale_config) -> Iterator[Flask]:
    app = create_app(sale_config(blink_webhook_secret=WEBHOOK_SECRET))
    app.testing = True
    yield app
    app.extensions["blinkpos"].close()


@pytest.fixture
def hook_client(hook_app: Flask) -> FlaskClient:
    return hook_app.test_client()


def receive_event(wallet_id: str, payment_hash: str, event_type: str = "receive.lightning", status="success"):
    return {
        "accountId": "acc",
        "walletId": wallet_id,
        "eventType": event_type,
        "transaction": {
            "id": secrets.token_hex(6),
            "status": status,
            "settlementAmount": 1000,
            "initiationVia": {"type": "Lightning", "paymentHash": payment_hash},
        },
    }


def signed_headers(
    body: bytes, message_id: str | None = None, at: datetime | None = None, secret=WEBHOOK_SECRET
):
    message_id = message_id or "msg_" + secrets.token_hex(8)
    at = at or datetime.now(UTC)
    signature = Webhook(secret).sign(message_id, at, body.decode())
    return {
        "svix-id": message_id,
        "svix-timestamp": str(int(at.timestamp())),
        "svix-signature": signature,
        "content-type": "application/json",
    }


def post_event(client: FlaskClient, event: dict, **header_options):
    body = json.dumps(event).encode()
    return client.post(WEBHOOK_PATH, data=body, headers=signed_headers(body, **header_options))


@pytest.fixture
def pending_sale(hook_client: FlaskClient, merchant: dict, sim: SimControl) -> Callable[[], str]:
    """pending_sale() -> payment hash of a fresh sale (paid at the simulator, not yet here)."""

    def make() -> str:
        response = hook_client.post("/api/blink/create-invoice", json=sale_body(merchant, 1000))
        assert response.status_code == 200, response.get_json()
        payment_hash = response.get_json()["invoice"]["paymentHash"]
        sim.pay(payment_hash)
        return payment_hash

    return make


def status_of(app: Flask, payment_hash: str) -> str:
    return str(app.extensions["blinkpos"].store.get_fresh(payment_hash).status)


def paid_events(app: Flask, payment_hash: str) -> list[dict]:
    events = split_events(app.extensions["blinkpos"].store, payment_hash)
    return [event for event in events if event["event_type"] == "paid"]


def test_good_signature_marks_the_split_paid_and_forwards_nothing_inline(
    hook_app: Flask,
    hook_client: FlaskClient,
    pending_sale,
    pos_account: dict,
    sim: SimControl,
    merchant: dict,
):
    payment_hash = pending_sale()

    response = post_event(hook_client, receive_event(pos_account["btcWalletId"], payment_hash))

    assert response.status_code == 200
    assert response.get_json() == {"received": True, "paymentHash": payment_hash, "status": "paid"}
    assert status_of(hook_app, payment_hash) == "paid"
    assert [event["data"]["source"] for event in paid_events(hook_app, payment_hash)] == ["webhook"]
    split = hook_app.extensions["blinkpos"].store.get_fresh(payment_hash)
    assert {str(leg.status) for leg in split.legs} == {"planned"}
    assert sim.balance(merchant["btcWalletId"]) == 0


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(
            lambda h: {**h, "svix-signature": "v1," + base64.b64encode(b"x" * 32).decode()}, id="bad"
        ),
        pytest.param(lambda h: {**h, "svix-signature": "v1,not base64!"}, id="garbage"),
        pytest.param(lambda h: {k: v for k, v in h.items() if k != "svix-signature"}, id="no-signature"),
        pytest.param(lambda h: {k: v for k, v in h.items() if k != "svix-id"}, id="no-id"),
        pytest.param(lambda h: {k: v for k, v in h.items() if not k.startswith("svix-")}, id="no-headers"),
        pytest.param(lambda h: {**h, "svix-id": "msg_other"}, id="signed-for-another-id"),
    ],
)
def test_bad_or_missing_signature_is_401_and_changes_nothing(
    hook_app: Flask, hook_client: FlaskClient, pending_sale, pos_account: dict, tamper
):
    payment_hash = pending_sale()
    body = json.dumps(receive_event(pos_account["btcWalletId"], payment_hash)).encode()

    response = hook_client.post(WEBHOOK_PATH, data=body, headers=tamper(signed_headers(body)))

    assert response.status_code == 401
    assert response.get_json()["code"] == "invalid_signature"
    assert status_of(hook_app, payment_hash) == "pending"
    assert paid_events(hook_app, payment_hash) == []


def test_a_body_changed_after_signing_is_rejected(
    hook_app: Flask, hook_client: FlaskClient, pending_sale, pos_account: dict
):
    payment_hash = pending_sale()
    signed = json.dumps(receive_event(pos_account["btcWalletId"], "0" * 64)).encode()
    swapped = json.dumps(receive_event(pos_account["btcWalletId"], payment_hash)).encode()

    response = hook_client.post(WEBHOOK_PATH, data=swapped, headers=signed_headers(signed))

    assert response.status_code == 401
    assert status_of(hook_app, payment_hash) == "pending"


@pytest.mark.parametrize("offset", [timedelta(minutes=-6), timedelta(minutes=6)], ids=["stale", "future"])
def test_timestamp_more_than_five_minutes_off_is_401(
    hook_app: Flask, hook_client: FlaskClient, pending_sale, pos_account: dict, offset: timedelta
):
    payment_hash = pending_sale()

    response = post_event(
        hook_client, receive_event(pos_account["btcWalletId"], payment_hash), at=datetime.now(UTC) + offset
    )

    assert response.status_code == 401
    assert status_of(hook_app, payment_hash) == "pending"


def test_a_secret_other_than_ours_is_401(hook_client: FlaskClient, pending_sale, pos_account: dict):
    payment_hash = pending_sale()
    other = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()

    response = post_event(hook_client, receive_event(pos_account["btcWalletId"], payment_hash), secret=other)

    assert response.status_code == 401


def test_redelivery_of_the_same_svix_id_does_nothing_new(
    hook_app: Flask, hook_client: FlaskClient, pending_sale, pos_account: dict
):
    payment_hash = pending_sale()
    event = receive_event(pos_account["btcWalletId"], payment_hash)

    first = post_event(hook_client, event, message_id="msg_same")
    again = post_event(hook_client, event, message_id="msg_same")

    assert first.get_json()["received"] is True
    assert again.status_code == 200
    assert again.get_json() == {"ignored": "duplicate_delivery"}
    assert len(paid_events(hook_app, payment_hash)) == 1


def test_a_second_event_for_a_paid_split_records_no_second_payment(
    hook_app: Flask, hook_client: FlaskClient, pending_sale, pos_account: dict
):
    payment_hash = pending_sale()
    event = receive_event(pos_account["btcWalletId"], payment_hash)

    post_event(hook_client, event)
    second = post_event(hook_client, event)

    assert second.status_code == 200
    assert len(paid_events(hook_app, payment_hash)) == 1


def test_event_on_a_foreign_wallet_is_ignored_with_200(
    hook_app: Flask, hook_client: FlaskClient, pending_sale, merchant: dict
):
    payment_hash = pending_sale()

    response = post_event(hook_client, receive_event(merchant["btcWalletId"], payment_hash))

    assert response.status_code == 200
    assert response.get_json() == {"ignored": "foreign_wallet"}
    assert status_of(hook_app, payment_hash) == "pending"


def test_unknown_payment_hash_is_ignored_with_200(hook_client: FlaskClient, pos_account: dict):
    response = post_event(hook_client, receive_event(pos_account["btcWalletId"], secrets.token_hex(32)))

    assert response.status_code == 200
    assert response.get_json() == {"ignored": "unknown_payment_hash"}


@pytest.mark.parametrize(
    ("event_type", "status", "reason"),
    [
        ("send.lightning", "success", "not_a_receive_event"),
        ("receive.lightning", "pending", "not_successful"),
        ("receive.lightning", "failure", "not_successful"),
    ],
)
def test_events_that_are_not_successful_receipts_are_ignored(
    hook_app: Flask, hook_client: FlaskClient, pending_sale, pos_account: dict, event_type, status, reason
):
    payment_hash = pending_sale()

    response = post_event(
        hook_client,
        receive_event(pos_account["btcWalletId"], payment_hash, event_type=event_type, status=status),
    )

    assert response.get_json() == {"ignored": reason}
    assert status_of(hook_app, payment_hash) == "pending"


def test_webhook_without_a_configured_secret_answers_503(sale_client: FlaskClient, pos_account: dict):
    body = json.dumps(receive_event(pos_account["btcWalletId"], "a" * 64)).encode()

    response = sale_client.post(WEBHOOK_PATH, data=body, headers=signed_headers(body))

    assert response.status_code == 503
    assert response.get_json()["code"] == "webhook_not_configured"


def test_the_simulators_own_webhook_is_accepted(
    hook_app: Flask, merchant: dict, sim: SimControl, pos_account
):
    """The simulator signs like Svix: deliver its real webhook through a live server."""
    import threading

    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, hook_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        sim.set_webhook(f"http://127.0.0.1:{server.server_port}{WEBHOOK_PATH}", WEBHOOK_SECRET)
        client = hook_app.test_client()
        payment_hash = client.post("/api/blink/create-invoice", json=sale_body(merchant, 500)).get_json()[
            "invoice"
        ]["paymentHash"]
        sim.pay(payment_hash)
        deadline = datetime.now(UTC) + timedelta(seconds=5)
        while status_of(hook_app, payment_hash) != "paid" and datetime.now(UTC) < deadline:
            threading.Event().wait(0.05)
        assert status_of(hook_app, payment_hash) == "paid"
    finally:
        server.shutdown()
        thread.join(timeout=5)
