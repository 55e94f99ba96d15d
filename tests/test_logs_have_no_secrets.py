"""A whole sale's logs (stdout, stderr and every log record) never contain an API key."""

from __future__ import annotations

import base64
import json
import logging
import threading
import time

import pytest
from werkzeug.serving import make_server

from blinksim.control import SimControl
from service import create_app
from service.logging import JsonFormatter
from service.worker import Worker
from tests.fixtures.payments import sale_body
from tests.fixtures.worker_thread import WorkerThread

WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"log-test-webhook-secret-32-bytes").decode()


def wait_until(predicate, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_whole_sale_with_webhook_worker_and_failures_logs_no_api_key(
    clean_db: str,
    clean_redis: str,
    sim_clean: SimControl,
    sale_config,
    merchant: dict,
    tipee,
    pos_account: dict,
    capfd: pytest.CaptureFixture,
    caplog: pytest.LogCaptureFixture,
):
    caplog.set_level(logging.DEBUG)
    sim = sim_clean
    alice, bob = tipee(), tipee()
    app = create_app(sale_config(blink_webhook_secret=WEBHOOK_SECRET, log_level="DEBUG"))
    services = app.extensions["blinkpos"]
    server = make_server("127.0.0.1", 0, app, threaded=True)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    worker = WorkerThread(Worker.from_services(services, poll_seconds=0.1)).start()
    client = app.test_client()
    try:
        # 1. A sale forwarded by the POS page, one payment failing first (error paths log too).
        created = client.post("/api/blink/create-invoice", json=sale_body(merchant, 1300, 300, [alice, bob]))
        first_hash = created.get_json()["invoice"]["paymentHash"]
        sim.pay(first_hash)
        sim.fault("lnInvoicePaymentSend", "error", count=1)
        client.post("/api/blink/forward-with-tips", json={"paymentHash": first_hash})
        # 2. The fallback endpoint, with the merchant key in the body, right and wrong.
        client.post(
            "/api/blink/forward-payment",
            json={"paymentHash": first_hash, "userApiKey": merchant["apiKey"] + "x", "userWalletId": "w"},
        )
        client.post(
            "/api/blink/forward-payment",
            json={
                "paymentHash": first_hash,
                "userApiKey": merchant["apiKey"],
                "userWalletId": merchant["btcWalletId"],
            },
        )
        # 3. A sale nobody forwards: the webhook marks it paid, the worker forwards it.
        sim.set_webhook(f"http://127.0.0.1:{server.server_port}/api/blink/webhook", WEBHOOK_SECRET)
        second = client.post("/api/blink/create-invoice", json=sale_body(merchant, 1100, 100, [alice]))
        second_hash = second.get_json()["invoice"]["paymentHash"]
        sim.pay(second_hash)
        wait_until(lambda: str(services.store.get_fresh(second_hash).status) == "completed", 10)
        wait_until(lambda: str(services.store.get_fresh(first_hash).status) == "completed", 10)
        # 4. A create-invoice the merchant key is refused for.
        client.post(
            "/api/blink/create-invoice",
            json={**sale_body(merchant, 100), "apiKey": "blink_wrongkey123456789"},
        )
    finally:
        worker.stop()
        server.shutdown()
        serving.join(timeout=5)
        services.close()

    captured = capfd.readouterr()
    formatter = JsonFormatter()
    records = "\n".join(formatter.format(record) + repr(vars(record)) for record in caplog.records)
    everything = captured.out + captured.err + records
    assert "worker_forwarded" in everything and "webhook_payment_received" in everything  # logs were captured
    for key in (merchant["apiKey"], pos_account["apiKey"]):
        # The tail too: a redactor that masks only a prefix must not let the rest through.
        assert key not in everything
        assert key[-12:] not in everything
    for line in captured.out.splitlines():
        if line.startswith("{"):
            json.loads(line)  # every log line on stdout is one JSON object
