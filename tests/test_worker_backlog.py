"""The figures the alerts watch, refreshed by the worker from Postgres: failed splits, the oldest
paid-but-unforwarded split, retrying legs; failed legs counted by reason; the liveness stamp."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask

from blinksim.control import SimControl
from service.store.backlog import read_backlog
from service.worker import Worker
from tests.test_worker import create_sale


@pytest.fixture
def make_app(make_sale_app) -> Callable[..., Flask]:
    return lambda **overrides: make_sale_app(**{"pending_poll_after_seconds": 3600, **overrides})


def sample(services, name: str, **labels: str) -> float | None:
    return services.metrics.registry.get_sample_value(name, labels or None)


def paid_sale(app: Flask, sim: SimControl, merchant: dict, tipee, amount: int = 300) -> str:
    payment_hash = create_sale(app, merchant, amount, 100, [tipee()])
    sim.pay(payment_hash)
    app.extensions["blinkpos"].store.mark_paid(payment_hash, source="test")
    return payment_hash


def test_backlog_counts_failed_splits_unforwarded_money_and_retrying_legs(
    make_app, sim: SimControl, merchant: dict, tipee
) -> None:
    app = make_app()
    services = app.extensions["blinkpos"]
    now = datetime.now(UTC)
    assert read_backlog(services.db, now) == read_backlog(services.db, now + timedelta(hours=1))
    assert read_backlog(services.db, now).failed_splits == 0

    waiting = paid_sale(app, sim, merchant, tipee)
    backlog = read_backlog(services.db, datetime.now(UTC) + timedelta(minutes=20))
    assert 19 * 60 < backlog.oldest_unforwarded_seconds < 21 * 60
    assert (backlog.failed_splits, backlog.legs_retrying) == (0, 0)

    sim.fault("lnInvoicePaymentSend", "error")  # every payout fails
    worker = Worker.from_services(services, backlog_interval_seconds=0)
    worker.run_once()
    assert sample(services, "blinkpos_legs_retrying") >= 1
    assert sample(services, "blinkpos_splits_failed") == 0
    assert sample(services, "blinkpos_oldest_unforwarded_split_age_seconds") > 0
    assert sample(services, "blinkpos_forward_leg_failures_total", reason="rejected") >= 1

    # Out of attempts (a service allowing one attempt per leg takes over): the split fails and
    # leaves the forwarding backlog for the operator's.
    strict = make_app(leg_max_attempts=1).extensions["blinkpos"]
    later = Worker.from_services(strict, backlog_interval_seconds=0)
    later._now = lambda: datetime.now(UTC) + timedelta(hours=2)  # past every leg's backoff
    later.run_once()
    services = strict
    assert str(services.store.get_fresh(waiting).status) == "failed"
    assert sample(services, "blinkpos_splits_failed") == 1
    assert sample(services, "blinkpos_legs_retrying") == 0
    assert sample(services, "blinkpos_oldest_unforwarded_split_age_seconds") == 0


def test_leg_failures_are_counted_by_a_bounded_reason(
    make_app, sim: SimControl, merchant: dict, tipee
) -> None:
    app = make_app(blink_read_timeout_seconds=0.5)
    services = app.extensions["blinkpos"]
    paid_sale(app, sim, merchant, tipee)
    sim.fault("lnInvoicePaymentSend", "timeout", count=1, delay_ms=2000)
    Worker.from_services(services).run_once()
    assert sample(services, "blinkpos_forward_leg_failures_total", reason="timeout") == 1
    assert sample(services, "blinkpos_forward_leg_failures_total", reason="rejected") is None

    # Blink holding a payment in flight is counted as pending, not as Blink being unavailable.
    paid_sale(app, sim, merchant, tipee)
    sim.fault("lnInvoicePaymentSend", "pending", count=1)
    Worker.from_services(services).run_once()
    assert sample(services, "blinkpos_forward_leg_failures_total", reason="pending") == 1
    assert sample(services, "blinkpos_forward_leg_failures_total", reason="unavailable") is None


def test_every_cycle_stamps_the_loop_and_touches_the_heartbeat_file(make_app, tmp_path: Path) -> None:
    app = make_app()
    services = app.extensions["blinkpos"]
    heartbeat = tmp_path / "heartbeat"
    worker = Worker.from_services(services, heartbeat_file=str(heartbeat), poll_seconds=0.05)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    before = time.time()
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not heartbeat.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        first = heartbeat.stat().st_mtime
        time.sleep(0.5)
    finally:
        stop.set()
        thread.join(10)
    assert heartbeat.stat().st_mtime > first, "touched again on later cycles"
    assert sample(services, "blinkpos_worker_last_cycle_timestamp_seconds") >= before
