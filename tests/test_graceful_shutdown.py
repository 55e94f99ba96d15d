"""SIGTERM, as Kubernetes sends it after the preStop pause: a gunicorn app in the middle of a
forward finishes that request and takes no new ones; the worker finishes the split in hand and
hands the rest of its batch back."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from blinksim.control import SimControl
from service import create_app
from service.config import Config
from service.devservers import free_port
from tests.fixtures.payments import sale_body
from tests.fixtures.servers import REPO_ROOT
from tests.test_worker import worker_environment

pytestmark = pytest.mark.slow

PAY_DELAY_MS = 1500  # every leg payment takes this long at the simulator


@pytest.fixture
def service_app(clean_db: str, clean_redis: str, sim_clean: SimControl, sale_config) -> Iterator[Flask]:
    """An in-process app on the same servers, to set up sales and read the store."""
    app = create_app(sale_config())
    yield app
    app.extensions["blinkpos"].close()


def post(url: str, body: dict, timeout: float = 60) -> tuple[int, dict]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def wait_for(predicate, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not {what} within {seconds} s")
        time.sleep(0.05)


def paid_sale(app: Flask, sim: SimControl, merchant: dict, recipients: list[dict], amount: int = 1200) -> str:
    response = app.test_client().post(
        "/api/blink/create-invoice", json=sale_body(merchant, amount, 200, recipients)
    )
    assert response.status_code == 200, response.get_json()
    payment_hash = response.get_json()["invoice"]["paymentHash"]
    sim.pay(payment_hash)
    return payment_hash


def leg_states(app: Flask, payment_hash: str) -> list[str]:
    return [str(leg.status) for leg in app.extensions["blinkpos"].store.get_fresh(payment_hash).legs]


@pytest.fixture
def gunicorn_app(sale_config, service_app: Flask, tmp_path: Path) -> Iterator[tuple[subprocess.Popen, str]]:
    config: Config = sale_config()
    port = free_port()
    env = {
        **worker_environment(config),
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": "1",
        "GUNICORN_THREADS": "4",
        "GUNICORN_GRACEFUL_TIMEOUT": "20",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"),
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _alive(url) or server.poll() is not None, 30, "serving")
        assert server.poll() is None, server.communicate()[1]
        yield server, url
    finally:
        if server.poll() is None:
            server.kill()
        server.communicate()


def _alive(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/livez", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def test_sigterm_mid_forward_lets_the_request_finish_and_refuses_new_connections(
    gunicorn_app, service_app: Flask, sim: SimControl, merchant: dict, tipee
) -> None:
    server, url = gunicorn_app
    alice = tipee()
    payment_hash = paid_sale(service_app, sim, merchant, [alice])
    sim.fault("lnInvoicePaymentSend", "delay", delay_ms=PAY_DELAY_MS)
    answer: dict = {}

    def forward() -> None:
        body = {"paymentHash": payment_hash}
        answer["status"], answer["body"] = post(f"{url}/api/blink/forward-with-tips", body)

    request = threading.Thread(target=forward)
    request.start()
    # SIGTERM once the first leg is being paid: the second one is still to come.
    wait_for(lambda: "sending" in leg_states(service_app, payment_hash), 20, "a leg in flight")
    server.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    with pytest.raises(OSError):  # the listener is closed: the load balancer must go elsewhere
        urllib.request.urlopen(f"{url}/livez", timeout=2)

    request.join(60)
    assert answer.get("status") == 200, answer
    assert leg_states(service_app, payment_hash) == ["succeeded", "succeeded"]
    assert sim.balance(merchant["btcWalletId"]) == 1000
    assert sim.balance(alice["btcWalletId"]) == 200
    _, stderr = server.communicate(timeout=30)
    assert server.returncode == 0, stderr
    assert "Traceback" not in stderr
    split = service_app.extensions["blinkpos"].store.get_fresh(payment_hash)
    assert (str(split.status), split.claimed_by) == ("completed", None)


def test_sigterm_to_the_worker_finishes_the_split_in_hand_and_releases_the_rest(
    sale_config, service_app: Flask, sim: SimControl, merchant: dict, tipee
) -> None:
    store = service_app.extensions["blinkpos"].store
    alice = tipee()
    hashes = [paid_sale(service_app, sim, merchant, [alice], amount=600) for _ in range(4)]
    for payment_hash in hashes:
        store.mark_paid(payment_hash, source="test")
    sim.fault("lnInvoicePaymentSend", "delay", delay_ms=PAY_DELAY_MS)

    worker = subprocess.Popen(
        [sys.executable, "-m", "service", "worker"],
        cwd=REPO_ROOT, env=worker_environment(sale_config()),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        # The worker forwards in paid order: SIGTERM while the first split's first leg is paid.
        wait_for(lambda: "sending" in leg_states(service_app, hashes[0]), 20, "the first split in hand")
        worker.send_signal(signal.SIGTERM)
        stdout, stderr = worker.communicate(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate()

    assert worker.returncode == 0, stderr
    assert json.loads(stdout.splitlines()[-1])["event"] == "worker_stopped"
    in_hand = store.get_fresh(hashes[0])
    assert str(in_hand.status) == "completed", "the split in hand was finished, not abandoned"
    for payment_hash in hashes[1:]:
        split = store.get_fresh(payment_hash)
        assert str(split.status) in {"paid", "forwarding"} and split.claimed_by is None, "handed back"
        assert set(leg_states(service_app, payment_hash)) == {"planned"}
