"""Postgres going away in the middle of the work (stopped `immediate`: a crash, recovery on start)
on a Postgres of the test's own: a forward whose payouts are in flight, a worker round, a webhook.
Nothing may be paid twice, and nothing (a payout, a payment notice) may be lost."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
import redis
from flask import Flask
from standardwebhooks import Webhook

from blinksim.control import SimControl
from service import create_app
from service.devservers import EmbeddedPostgres
from service.store import keys
from service.store.errors import StoreUnavailable
from tests.fixtures.clocks import MovableClock, create_sale, transfers_by_hash, worker_with_clock
from tests.fixtures.worker_thread import WorkerThread

WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"postgres-gone-test-secret-32byte").decode()
PAYOUT_HELD_MS = 4000  # each payout answers this late: the window Postgres dies in
pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def app_on_own_postgres(
    private_postgres: EmbeddedPostgres, clean_redis: str, sim_clean: SimControl, sale_config
) -> Iterator[Callable[..., Flask]]:
    apps: list[Flask] = []

    def make(**overrides) -> Flask:
        config = sale_config(
            database_url=private_postgres.url, pg_connect_timeout_seconds=2.0,
            blink_read_timeout_seconds=20.0, pending_poll_after_seconds=3600,
            blink_webhook_secret=WEBHOOK_SECRET, **overrides,
        )
        apps.append(create_app(config))
        apps[-1].testing = True
        return apps[-1]

    yield make
    for app in apps:
        app.extensions["blinkpos"].close()


def _restart(postgres: EmbeddedPostgres, app: Flask) -> None:
    """Starts Postgres again and waits until the app's pool reaches it: the pool retries with a
    growing backoff, so its first connection may come a few seconds after the server is up."""
    postgres.start()
    deadline = time.monotonic() + 60
    while True:
        try:
            app.extensions["blinkpos"].db.ping(5)
            return
        except StoreUnavailable:
            assert time.monotonic() < deadline, "the app never reached the restarted Postgres"
            time.sleep(0.2)


def _paid_sale(app: Flask, sim: SimControl, merchant: dict, alice: dict) -> str:
    payment_hash = create_sale(app, merchant, 1000, 200, [alice])
    sim.pay(payment_hash)
    return payment_hash


def _crash_postgres_once_payouts_leave(
    postgres: EmbeddedPostgres, app: Flask, payment_hash: str, sim: SimControl
) -> None:
    """Waits until every leg is committed `sending` (its payout at Blink), then crashes Postgres."""
    store = app.extensions["blinkpos"].store
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        legs = store.get_fresh(payment_hash).legs
        if all(str(leg.status) == "sending" for leg in legs):
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the legs never reached sending")
    postgres.stop("immediate")


def _forward_once_postgres_answers(app: Flask, payment_hash: str):
    """The POS page's forward, repeated while it answers 503: the pool may hand out one connection
    from before the restart, which fails and is replaced."""
    for _ in range(5):
        answer = app.test_client().post("/api/blink/forward-with-tips", json={"paymentHash": payment_hash})
        if answer.status_code != 503:
            return answer
        time.sleep(0.5)
    return answer


def _assert_paid_once(app: Flask, sim: SimControl, payment_hash: str, merchant: dict, alice: dict) -> None:
    split = app.extensions["blinkpos"].store.get_fresh(payment_hash)
    assert str(split.status) == "completed"
    paid = transfers_by_hash(sim)
    assert [paid[leg.payment_hash] for leg in split.legs] == [1, 1]
    assert sim.balance(merchant["btcWalletId"]) == 800
    assert sim.balance(alice["btcWalletId"]) == 200


def test_postgres_crashing_mid_forward_answers_503_and_the_worker_pays_each_leg_once(
    app_on_own_postgres, private_postgres: EmbeddedPostgres, sim: SimControl, merchant: dict, tipee
):
    app = app_on_own_postgres()
    alice = tipee()
    payment_hash = _paid_sale(app, sim, merchant, alice)
    sim.fault("lnInvoicePaymentSend", "delay", count=2, delay_ms=PAYOUT_HELD_MS)
    answers = []
    till = threading.Thread(target=lambda: answers.append(
        app.test_client().post("/api/blink/forward-with-tips", json={"paymentHash": payment_hash})
    ))
    till.start()
    _crash_postgres_once_payouts_leave(private_postgres, app, payment_hash, sim)
    till.join(60)

    (answer,) = answers
    assert answer.status_code == 503, answer.get_json()
    assert answer.get_json()["code"] == "database_unavailable"
    assert "Traceback" not in answer.get_data(as_text=True)
    assert sim.balance(merchant["btcWalletId"]) == 800, "the payouts left before Postgres died"

    _restart(private_postgres, app)
    refused = _forward_once_postgres_answers(app, payment_hash)
    assert refused.status_code == 409, "the dead forward's lease still stands"
    clock = MovableClock()
    clock.advance(seconds=app.extensions["blinkpos"].config.forward_lease_seconds + 1)
    assert worker_with_clock(app, clock, "worker:after-crash").run_once().completed == 1
    _assert_paid_once(app, sim, payment_hash, merchant, alice)


def test_postgres_crashing_while_leg_invoices_are_made_pays_nothing_and_logs_no_stack_trace(
    app_on_own_postgres, private_postgres: EmbeddedPostgres, sim: SimControl, merchant: dict, tipee, caplog
):
    app = app_on_own_postgres()
    alice = tipee()
    payment_hash = _paid_sale(app, sim, merchant, alice)
    store = app.extensions["blinkpos"].store
    sim.fault("lnInvoiceCreateOnBehalfOfRecipient", "delay", count=2, delay_ms=PAYOUT_HELD_MS)
    answers = []
    till = threading.Thread(target=lambda: answers.append(
        app.test_client().post("/api/blink/forward-with-tips", json={"paymentHash": payment_hash})
    ))
    till.start()
    deadline = time.monotonic() + 30
    while str(store.get_fresh(payment_hash).status) != "forwarding":  # claimed; invoices on their way
        assert time.monotonic() < deadline, "the forward never claimed the sale"
        time.sleep(0.05)
    private_postgres.stop("immediate")
    till.join(60)

    (answer,) = answers
    assert answer.status_code == 503, answer.get_json()
    assert answer.get_json()["code"] == "database_unavailable"
    assert sim.balance(merchant["btcWalletId"]) == sim.balance(alice["btcWalletId"]) == 0
    traced = [record.getMessage() for record in caplog.records if record.exc_info]
    assert traced == [], "a database outage is no bug: no stack trace in the logs"

    _restart(private_postgres, app)
    clock = MovableClock()
    clock.advance(seconds=app.extensions["blinkpos"].config.forward_lease_seconds + 1)
    worker_with_clock(app, clock, "worker:after-crash").run_once()
    _assert_paid_once(app, sim, payment_hash, merchant, alice)


def test_postgres_crashing_mid_worker_round_leaves_the_loop_running_and_pays_each_leg_once(
    app_on_own_postgres, private_postgres: EmbeddedPostgres, sim: SimControl, merchant: dict, tipee
):
    app = app_on_own_postgres()
    alice = tipee()
    payment_hash = _paid_sale(app, sim, merchant, alice)
    app.extensions["blinkpos"].store.mark_paid(payment_hash, source="test")
    sim.fault("lnInvoicePaymentSend", "delay", count=2, delay_ms=PAYOUT_HELD_MS)
    clock = MovableClock()
    worker = WorkerThread(worker_with_clock(app, clock, "worker:survivor")).start()
    try:
        _crash_postgres_once_payouts_leave(private_postgres, app, payment_hash, sim)
        time.sleep(PAYOUT_HELD_MS / 1000 + 1)  # the round ends on the dead database; more fail
        assert worker._thread.is_alive()
        _restart(private_postgres, app)
        # Its own claim could not be released: it is taken again once the lease ran out.
        clock.advance(seconds=app.extensions["blinkpos"].config.forward_lease_seconds + 1)
        store = app.extensions["blinkpos"].store
        deadline = time.monotonic() + 60
        while str(store.get_fresh(payment_hash).status) != "completed":
            assert time.monotonic() < deadline, "the worker never finished the sale"
            time.sleep(0.1)
    finally:
        worker.stop()
    _assert_paid_once(app, sim, payment_hash, merchant, alice)


def _signed(event: dict, message_id: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(event).encode()
    at = datetime.now(UTC)
    return body, {
        "svix-id": message_id,
        "svix-timestamp": str(int(at.timestamp())),
        "svix-signature": Webhook(WEBHOOK_SECRET).sign(message_id, at, body.decode()),
        "content-type": "application/json",
    }


def test_a_webhook_whose_write_failed_is_not_remembered_and_its_redelivery_marks_the_sale_paid(
    app_on_own_postgres, private_postgres: EmbeddedPostgres, sim: SimControl, merchant: dict,
    pos_account: dict, clean_redis: str,
):
    app = app_on_own_postgres()
    payment_hash = create_sale(app, merchant, 1000)
    sim.pay(payment_hash)
    event = {
        "accountId": "acc", "walletId": pos_account["btcWalletId"], "eventType": "receive.lightning",
        "transaction": {"id": "tx1", "status": "success", "settlementAmount": 1000,
                        "initiationVia": {"type": "Lightning", "paymentHash": payment_hash}},
    }
    body, headers = _signed(event, "msg_postgres_gone")
    private_postgres.stop("immediate")

    failed = app.test_client().post("/api/blink/webhook", data=body, headers=headers)

    assert failed.status_code == 503, failed.get_json()
    assert failed.get_json()["code"] == "database_unavailable"
    valkey = redis.Redis.from_url(clean_redis)
    try:
        assert valkey.exists(keys.svix_webhook("msg_postgres_gone")) == 0, "the delivery id was kept"
    finally:
        valkey.close()

    _restart(private_postgres, app)
    redelivered = app.test_client().post("/api/blink/webhook", data=body, headers=headers)
    assert redelivered.status_code == 200, redelivered.get_json()
    assert redelivered.get_json()["status"] == "paid"
    assert str(app.extensions["blinkpos"].store.get_fresh(payment_hash).status) == "paid"
