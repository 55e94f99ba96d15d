"""The background worker against real Postgres, Valkey and the simulator over HTTP."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from werkzeug.serving import make_server

from blinksim.control import SimControl
from service import build_services, create_app
from service.config import Config
from service.store.sql import load_queries
from service.worker import Worker, heartbeat_age_seconds
from tests.fixtures.audit import split_events
from tests.fixtures.payments import sale_body
from tests.fixtures.servers import REPO_ROOT
from tests.fixtures.worker_thread import WorkerThread

WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"worker-test-webhook-secret-32byt").decode()
FAST = {"poll_seconds": 0.1}
TEST_QUERIES = load_queries(REPO_ROOT / "sql" / "testing")


@pytest.fixture
def worker_config(
    clean_db: str, clean_redis: str, sim_clean: SimControl, sale_config
) -> Callable[..., Config]:
    return lambda **overrides: sale_config(**{"pending_poll_after_seconds": 3600, **overrides})


@pytest.fixture
def make_app(worker_config) -> Iterator[Callable[..., Flask]]:
    apps: list[Flask] = []

    def make(**overrides) -> Flask:
        app = create_app(worker_config(**overrides))
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["blinkpos"].close()


@pytest.fixture
def run_workers() -> Iterator[Callable[..., WorkerThread]]:
    """run_workers(services, **settings) -> a started worker thread, stopped after the test."""
    threads: list[WorkerThread] = []

    def start(services, **settings) -> WorkerThread:
        thread = WorkerThread(Worker.from_services(services, **{**FAST, **settings})).start()
        threads.append(thread)
        return thread

    yield start
    for thread in threads:
        thread.stop()


def create_sale(app: Flask, merchant: dict, amount: int, tip: int = 0, recipients=None) -> str:
    response = app.test_client().post(
        "/api/blink/create-invoice", json=sale_body(merchant, amount, tip, recipients)
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()["invoice"]["paymentHash"]


def wait_for(predicate: Callable[[], bool], seconds: float, what: str) -> float:
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > seconds:
            raise AssertionError(f"not {what} within {seconds} s")
        time.sleep(0.05)
    return time.monotonic() - started


def status(app: Flask, payment_hash: str) -> str:
    return str(app.extensions["blinkpos"].store.get_fresh(payment_hash).status)


def assert_every_leg_paid_once(app: Flask, sim: SimControl, payment_hashes: list[str]) -> None:
    """Each leg's invoice appears exactly once in the simulator's ledger, for the leg's sats."""
    transfers = Counter(t["paymentHash"] for t in sim.ledger())
    store = app.extensions["blinkpos"].store
    for payment_hash in payment_hashes:
        split = store.get_fresh(payment_hash)
        assert str(split.status) == "completed", (payment_hash, split.status)
        for leg in split.legs:
            assert leg.payment_hash is not None
            assert transfers[leg.payment_hash] == 1, (leg.kind, leg.recipient, transfers[leg.payment_hash])


@pytest.fixture
def live_hook_app(make_app) -> Iterator[tuple[Flask, str]]:
    app = make_app(blink_webhook_secret=WEBHOOK_SECRET)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield app, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


def test_a_sale_nobody_forwards_is_forwarded_by_webhook_and_worker_within_5s(
    live_hook_app, run_workers, sim: SimControl, merchant: dict, tipee
):
    app, url = live_hook_app
    alice, bob = tipee(), tipee()
    sim.set_webhook(f"{url}/api/blink/webhook", WEBHOOK_SECRET)
    run_workers(app.extensions["blinkpos"])
    payment_hash = create_sale(app, merchant, 1300, 300, [alice, bob])

    sim.pay(payment_hash)
    wait_for(lambda: status(app, payment_hash) == "completed", 5, "forwarded")

    assert sim.balance(merchant["btcWalletId"]) == 1000
    assert sim.balance(alice["btcWalletId"]) + sim.balance(bob["btcWalletId"]) == 300
    sources = [e["data"].get("source") for e in split_events(app.extensions["blinkpos"].store, payment_hash)]
    assert "webhook" in sources
    assert_every_leg_paid_once(app, sim, [payment_hash])


def test_with_webhooks_off_the_worker_finds_the_payment_by_polling(
    make_app, run_workers, sim: SimControl, merchant: dict, tipee
):
    app = make_app(pending_poll_after_seconds=1)
    alice = tipee()
    run_workers(app.extensions["blinkpos"])
    payment_hash = create_sale(app, merchant, 1100, 100, [alice])

    sim.pay(payment_hash)
    wait_for(lambda: status(app, payment_hash) == "completed", 5, "forwarded")

    events = split_events(app.extensions["blinkpos"].store, payment_hash)
    paid = [e for e in events if e["event_type"] == "paid"]
    assert [e["data"]["source"] for e in paid] == ["worker_poll"]
    assert sim.balance(alice["btcWalletId"]) == 100
    assert_every_leg_paid_once(app, sim, [payment_hash])


def test_an_unpaid_pending_split_is_asked_with_backoff_and_stays_pending(make_app, merchant: dict):
    app = make_app(pending_poll_after_seconds=1)
    services = app.extensions["blinkpos"]
    payment_hash = create_sale(app, merchant, 500)
    later = datetime.now(UTC) + timedelta(seconds=2)
    worker = Worker.from_services(services)
    worker._now = lambda: later  # the split is now old enough to be asked

    first = worker.run_once()
    second = worker.run_once()  # right after: its backoff (1 s, then 2 s) is not over

    assert (first.checked, second.checked) == (1, 0)
    assert status(app, payment_hash) == "pending"


def test_a_split_past_expiry_is_asked_once_and_then_expired(make_app, merchant: dict, sim: SimControl):
    app = make_app()
    services = app.extensions["blinkpos"]
    unpaid = create_sale(app, merchant, 500)
    paid_late = create_sale(app, merchant, 700)
    sim.pay(paid_late)  # paid, but the webhook never came
    worker = Worker.from_services(services)
    worker._now = lambda: datetime.now(UTC) + timedelta(days=2)  # both invoices are past expiry

    report = worker.run_once()

    assert report.checked == 2
    assert report.expired == 1
    assert status(app, unpaid) == "expired"
    assert status(app, paid_late) in {"paid", "forwarding", "completed"}


def test_a_tip_leg_failing_three_times_then_succeeding_is_paid_exactly_once(
    make_app, run_workers, sim: SimControl, merchant: dict, tipee
):
    app = make_app()
    alice = tipee()
    payment_hash = create_sale(app, merchant, 200, 200, [alice])  # tip only: one tip leg
    sim.pay(payment_hash)
    app.extensions["blinkpos"].store.mark_paid(payment_hash, source="test")
    sim.fault("lnInvoicePaymentSend", "error", count=3)

    run_workers(app.extensions["blinkpos"])
    wait_for(lambda: status(app, payment_hash) == "completed", 20, "completed after retries")

    split = app.extensions["blinkpos"].store.get_fresh(payment_hash)
    (leg,) = split.legs
    assert (str(leg.kind), leg.attempts) == ("tip", 4)
    events = Counter(e["event_type"] for e in split_events(app.extensions["blinkpos"].store, payment_hash))
    assert events["leg_failed"] == 3
    assert events["leg_paid"] == 1
    assert events["leg_invoiced"] == 1  # one invoice, paid on the fourth attempt
    assert sim.balance(alice["btcWalletId"]) == 200
    assert_every_leg_paid_once(app, sim, [payment_hash])


# 200 sales on a loaded 2-core machine: room to finish, rather than a 90 s race inside 120 s.
@pytest.mark.timeout(420)
def test_two_workers_on_a_backlog_of_200_paid_splits_pay_every_leg_once(
    make_app, worker_config, run_workers, sim: SimControl, merchant: dict, tipee
):
    app = make_app()
    alice = tipee()
    store = app.extensions["blinkpos"].store
    hashes = [create_sale(app, merchant, 110 + i, 10, [alice]) for i in range(200)]
    for payment_hash in hashes:
        sim.pay(payment_hash)
        store.mark_paid(payment_hash, source="test")
    # Each worker with its own pools and clients, as two processes would have.
    first, second = build_services(worker_config()), build_services(worker_config())
    threads = []
    try:
        threads = [run_workers(first, batch_size=10), run_workers(second, batch_size=10)]
        wait_for(lambda: all(status(app, h) == "completed" for h in hashes), 300, "all completed")
    finally:
        for thread in threads:
            thread.stop()
        first.close()
        second.close()

    assert_every_leg_paid_once(app, sim, hashes)
    assert sim.balance(merchant["btcWalletId"]) == sum(100 + i for i in range(200))
    assert sim.balance(alice["btcWalletId"]) == 10 * 200
    owners = {
        e["data"]["owner"]
        for h in hashes
        for e in split_events(store, h)
        if e["event_type"] == "forwarding_started"
    }
    assert len(owners) == 2, "both workers took part"


def worker_environment(config: Config) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": config.database_url,
        "REDIS_URL": config.redis_url,
        "BLINK_API_URL": config.blink_api_url,
        "BLINKPOS_API_KEY": config.blinkpos_api_key,
        "BLINKPOS_BTC_WALLET_ID": config.blinkpos_btc_wallet_id,
        "API_KEY_ENCRYPTION_KEY": config.api_key_encryption_key,
        "WORKER_POLL_SECONDS": "0.1",
        "PENDING_POLL_AFTER_SECONDS": "3600",
        "PG_POOL_MIN_SIZE": "1",
        "PG_POOL_MAX_SIZE": "2",
        "BLINK_READ_TIMEOUT_SECONDS": "5",
        "LOG_LEVEL": "INFO",
    }


def test_sigterm_during_a_batch_exits_cleanly_and_leaves_no_leg_half_recorded(
    make_app, worker_config, run_workers, sim: SimControl, merchant: dict, tipee
):
    app = make_app()
    alice = tipee()
    store = app.extensions["blinkpos"].store
    hashes = [create_sale(app, merchant, 150, 50, [alice]) for _ in range(8)]
    for payment_hash in hashes:
        sim.pay(payment_hash)
        store.mark_paid(payment_hash, source="test")
    sim.fault("lnInvoicePaymentSend", "delay", delay_ms=300)  # every payment slow: a long batch

    process = subprocess.Popen(
        [sys.executable, "-m", "service", "worker"],
        cwd=REPO_ROOT,
        env=worker_environment(worker_config()),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(
            lambda: any(leg.status == "succeeded" for h in hashes for leg in store.get_fresh(h).legs),
            20,
            "a leg paid by the worker process",
        )
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    assert process.returncode == 0, stderr
    log_lines = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    assert log_lines[-1]["event"] == "worker_stopped"
    splits = [store.get_fresh(h) for h in hashes]
    assert any(str(s.status) != "completed" for s in splits), "SIGTERM came too late to test anything"
    for split in splits:
        assert split.claimed_by is None, "every claim was finished or released"
        for leg in split.legs:
            if leg.payment_request is None:
                assert str(leg.status) == "planned"
            assert str(leg.status) != "sending"

    sim.clear_faults()
    run_workers(app.extensions["blinkpos"])
    wait_for(lambda: all(status(app, h) == "completed" for h in hashes), 20, "finished by a second worker")
    assert_every_leg_paid_once(app, sim, hashes)


def test_the_heartbeat_shows_in_health_and_samples_reach_system_metrics(make_app, merchant: dict):
    app = make_app()
    services = app.extensions["blinkpos"]
    client = app.test_client()
    assert client.get("/api/health").get_json()["worker"]["heartbeatAgeSeconds"] is None
    create_sale(app, merchant, 500)
    worker = Worker.from_services(services)

    worker.run_once()
    written = worker.write_samples()

    body = client.get("/api/health").get_json()
    assert 0 <= body["worker"]["heartbeatAgeSeconds"] < 5
    assert heartbeat_age_seconds(services.db) < 5
    assert body["checks"]["postgres"]["pool"]["max"] == services.config.pg_pool_max_size
    assert written > 0
    with services.db.connection() as conn:
        names = {row["name"] for row in TEST_QUERIES.select_metric_names.all(conn)}
    assert {"errors", "cache_hits"} <= names


def test_housekeeping_prunes_old_metric_samples_only(make_app):
    app = make_app()
    services = app.extensions["blinkpos"]
    now = datetime.now(UTC)
    rows = [
        {"name": "old", "value": 1.0, "tags": json.dumps({}), "recorded_at": now - timedelta(days=40)},
        {"name": "recent", "value": 1.0, "tags": json.dumps({}), "recorded_at": now - timedelta(days=1)},
    ]
    with services.db.transaction() as conn:
        services.db.q.insert_metric.many(conn, rows)

    Worker.from_services(services).housekeeping()

    with services.db.connection() as conn:
        names = {row["name"] for row in TEST_QUERIES.select_metric_names.all(conn)}
    assert names == {"recent"}


def test_a_split_that_hits_a_bug_does_not_stop_the_worker_or_its_batch(
    make_app, sim: SimControl, merchant: dict
):
    app = make_app()
    services = app.extensions["blinkpos"]
    poison, healthy = create_sale(app, merchant, 500), create_sale(app, merchant, 700)
    sim.pay(poison)
    sim.pay(healthy)
    for payment_hash in (poison, healthy):
        services.store.mark_paid(payment_hash, "test")

    worker = Worker.from_services(services, **FAST)
    real_forward = services.forwarder.forward_claimed

    def forward_with_a_bug(split, owner):
        if split.payment_hash == poison:
            raise RuntimeError("a bug in the forwarding code")
        return real_forward(split, owner)

    services.forwarder.forward_claimed = forward_with_a_bug
    report = worker.run_once()

    assert report.completed == 1
    assert status(app, healthy) == "completed"
    assert sim.balance(merchant["btcWalletId"]) == 700
    # Once the bug is gone, the next cycle forwards the split that hit it.
    services.forwarder.forward_claimed = real_forward
    worker.run_once()
    assert status(app, poison) == "completed"
    assert sim.balance(merchant["btcWalletId"]) == 1200
