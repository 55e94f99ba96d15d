"""`python -m service splits failed|retry` as an operator runs them (subprocesses, real servers)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter

import pytest
from flask import Flask
from flask.testing import FlaskClient

from blinksim.control import SimControl
from service import create_app
from service.config import Config
from service.worker import Worker
from tests.fixtures.audit import split_events
from tests.fixtures.payments import sale_body
from tests.fixtures.servers import REPO_ROOT


@pytest.fixture
def one_try_app(clean_db: str, clean_redis: str, sim_clean: SimControl, sale_config):
    """Legs get a single attempt (the first failure makes the split `failed`), one after another."""
    config = sale_config(leg_max_attempts=1, forward_leg_concurrency=1)  # the fault hits the base
    app = create_app(config)
    yield app, config
    app.extensions["blinkpos"].close()


def cli(config: Config, *args: str) -> subprocess.CompletedProcess:
    environment = {
        **os.environ,
        "DATABASE_URL": config.database_url,
        "REDIS_URL": config.redis_url,
        "BLINK_API_URL": config.blink_api_url,
        "BLINKPOS_API_KEY": config.blinkpos_api_key,
        "BLINKPOS_BTC_WALLET_ID": config.blinkpos_btc_wallet_id,
        "API_KEY_ENCRYPTION_KEY": config.api_key_encryption_key,
        "PG_POOL_MIN_SIZE": "1",
    }
    return subprocess.run(
        [sys.executable, "-m", "service", *args],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


def failed_sale(app: Flask, sim: SimControl, merchant: dict, tipee: dict) -> str:
    client: FlaskClient = app.test_client()
    created = client.post("/api/blink/create-invoice", json=sale_body(merchant, 1100, 100, [tipee]))
    payment_hash = created.get_json()["invoice"]["paymentHash"]
    sim.pay(payment_hash)
    sim.fault("lnInvoicePaymentSend", "error", count=1)  # the base leg fails once, the tip goes through
    response = client.post("/api/blink/forward-with-tips", json={"paymentHash": payment_hash})
    assert response.status_code >= 500
    assert str(app.extensions["blinkpos"].store.get_fresh(payment_hash).status) == "failed"
    sim.clear_faults()
    return payment_hash


def test_splits_failed_lists_the_split_with_its_legs_and_errors(
    one_try_app, sim: SimControl, merchant: dict, tipee
):
    app, config = one_try_app
    payment_hash = failed_sale(app, sim, merchant, tipee())

    table = cli(config, "splits", "failed")
    as_json = cli(config, "splits", "failed", "--json")

    assert table.returncode == 0, table.stderr
    assert payment_hash in table.stdout
    assert "failed" in table.stdout and "attempts=1" in table.stdout
    (listed,) = json.loads(as_json.stdout)
    assert listed["paymentHash"] == payment_hash
    assert listed["status"] == "failed"
    (failed_leg,) = [leg for leg in listed["legs"] if leg["status"] == "failed"]
    assert failed_leg["attempts"] == 1 and failed_leg["nextAttemptAt"] is None, "out of attempts: none due"
    legs = {leg["kind"]: leg for leg in listed["legs"]}
    assert legs["base"]["status"] == "failed" and legs["base"]["lastError"]
    assert legs["tip"]["status"] == "succeeded"
    assert config.blinkpos_api_key not in table.stdout + as_json.stdout
    assert merchant["apiKey"] not in table.stdout + as_json.stdout


def test_splits_failed_with_nothing_to_show_says_so(one_try_app):
    _app, config = one_try_app

    result = cli(config, "splits", "failed")

    assert result.returncode == 0
    assert "no splits need attention" in result.stdout


def test_splits_retry_hands_the_split_back_to_the_worker_which_pays_each_leg_once(
    one_try_app, sim: SimControl, merchant: dict, tipee
):
    app, config = one_try_app
    payment_hash = failed_sale(app, sim, merchant, tipee())
    store = app.extensions["blinkpos"].store

    result = cli(config, "splits", "retry", payment_hash)

    assert result.returncode == 0, result.stderr
    split = store.get_fresh(payment_hash)
    assert str(split.status) == "forwarding"
    assert [leg.attempts for leg in split.legs if str(leg.status) == "failed"] == [0]
    assert "retry_requested" in [e["event_type"] for e in split_events(store, payment_hash)]

    Worker.from_services(app.extensions["blinkpos"]).run_once()

    split = store.get_fresh(payment_hash)
    assert str(split.status) == "completed"
    transfers = Counter(t["paymentHash"] for t in sim.ledger())
    assert all(transfers[leg.payment_hash] == 1 for leg in split.legs)
    assert sim.balance(merchant["btcWalletId"]) == 1000


def test_splits_retry_now_forwards_at_once(one_try_app, sim: SimControl, merchant: dict, tipee):
    app, config = one_try_app
    payment_hash = failed_sale(app, sim, merchant, tipee())

    result = cli(config, "splits", "retry", payment_hash, "--now")

    assert result.returncode == 0, result.stderr
    assert "forwarded" in result.stdout
    assert str(app.extensions["blinkpos"].store.get_fresh(payment_hash).status) == "completed"
    assert sim.balance(merchant["btcWalletId"]) == 1000


def test_splits_retry_refuses_a_completed_or_unknown_split(one_try_app, sim: SimControl, merchant: dict):
    app, config = one_try_app
    client = app.test_client()
    created = client.post("/api/blink/create-invoice", json=sale_body(merchant, 500))
    payment_hash = created.get_json()["invoice"]["paymentHash"]
    sim.pay(payment_hash)
    assert client.post("/api/blink/forward-with-tips", json={"paymentHash": payment_hash}).status_code == 200

    completed = cli(config, "splits", "retry", payment_hash)
    unknown = cli(config, "splits", "retry", "f" * 64)

    assert completed.returncode == 1 and "nothing to retry" in completed.stderr
    assert unknown.returncode == 1
    assert str(app.extensions["blinkpos"].store.get_fresh(payment_hash).status) == "completed"
