"""Several app instances over one Postgres and one Redis, as behind a load balancer.

Two real gunicorn processes (`gunicorn -c gunicorn.conf.py wsgi:app`, 2 workers x 8 threads
each) serve the same database. The simulator's ledger is the judge: every leg of every sale is
paid exactly once, whichever instance took which call, and restarting an instance under a
stream of sales loses none.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from blinksim.control import SimControl
from service.devservers import free_port
from tests.fixtures.payments import sale_body
from tests.fixtures.servers import REPO_ROOT, TEST_ENCRYPTION_KEY

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

HTTP_TIMEOUT_SECONDS = 30
START_TIMEOUT_SECONDS = 45
STOP_TIMEOUT_SECONDS = 40


class GunicornInstance:
    """One `gunicorn -c gunicorn.conf.py wsgi:app` process group on its own port."""

    def __init__(self, name: str, env: dict[str, str], workdir: Path) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"{name}.log"
        self.env = {
            **env,
            "GUNICORN_BIND": f"127.0.0.1:{self.port}",
            "PORT": str(self.port),
            "PROMETHEUS_MULTIPROC_DIR": str(workdir / f"{name}-metrics"),
        }
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
                cwd=REPO_ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: the workers can be killed with it
            )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                pytest.fail(f"gunicorn {self.name} exited while starting:\n{self.log_tail()}")
            try:
                if requests.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        pytest.fail(f"gunicorn {self.name} not ready after {START_TIMEOUT_SECONDS}s:\n{self.log_tail()}")

    def terminate(self) -> int:
        """SIGTERM to the master (graceful: in-flight requests finish), then wait for it."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=STOP_TIMEOUT_SECONDS)

    def kill(self) -> None:
        """Whatever is left of this instance's process group, at once (test teardown)."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=10)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@pytest.fixture
def instance_env(
    clean_db: str, clean_redis: str, sim_clean: SimControl, pos_account: dict
) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "DATABASE_URL": clean_db,
        "REDIS_URL": clean_redis,
        "BLINK_API_URL": sim_clean.graphql_url,
        "BLINKPOS_API_KEY": pos_account["apiKey"],
        "BLINKPOS_BTC_WALLET_ID": pos_account["btcWalletId"],
        "API_KEY_ENCRYPTION_KEY": TEST_ENCRYPTION_KEY,
        "GUNICORN_WORKERS": "2",
        "GUNICORN_THREADS": "8",
        "GUNICORN_GRACEFUL_TIMEOUT": "30",
        "PG_POOL_MIN_SIZE": "1",
        "PG_POOL_MAX_SIZE": "8",
        "BLINK_READ_TIMEOUT_SECONDS": "5",
        "RATE_LIMIT_PER_WALLET_PER_MINUTE": "100000",
        "RATE_LIMIT_PER_IP_PER_MINUTE": "100000",
        "RATE_LIMIT_FORWARD_PER_IP_PER_MINUTE": "100000",
        "RATE_LIMIT_FORWARD_PER_HASH_PER_MINUTE": "100000",
        "ENVIRONMENT": "test",
        "LOG_LEVEL": "WARNING",
    }


@pytest.fixture
def instances(instance_env: dict[str, str], tmp_path: Path) -> Iterator[list[GunicornInstance]]:
    """Two running instances over the same Postgres and Redis; killed whatever the test did."""
    pair = [GunicornInstance(name, instance_env, tmp_path) for name in ("a", "b")]
    try:
        for instance in pair:
            instance.start()
        for instance in pair:
            instance.wait_ready()
        yield pair
    finally:
        for instance in pair:
            instance.kill()


# --- helpers --------------------------------------------------------------------------------------


def post(url: str, body: dict) -> requests.Response:
    return requests.post(url, json=body, timeout=HTTP_TIMEOUT_SECONDS)


def create_invoice(base_url: str, body: dict) -> dict:
    response = post(f"{base_url}/api/blink/create-invoice", body)
    assert response.status_code == 200, response.text
    return response.json()["invoice"]


def forward_call(base_url: str, payment_hash: str, merchant: dict, fallback: bool) -> requests.Response:
    """forward-with-tips, or (fallback) the POS page's forward-payment with the merchant's key."""
    if fallback:
        body = {
            "paymentHash": payment_hash,
            "userApiKey": merchant["apiKey"],
            "userWalletId": merchant["btcWalletId"],
        }
        return post(f"{base_url}/api/blink/forward-payment", body)
    return post(f"{base_url}/api/blink/forward-with-tips", {"paymentHash": payment_hash})


def payment_status(base_url: str, payment_hash: str, api_key: str) -> dict:
    """The merchant's full view (its legs' invoices), by its own key."""
    response = requests.get(
        f"{base_url}/api/payment-status/{payment_hash}",
        headers={"X-API-KEY": api_key},
        timeout=HTTP_TIMEOUT_SECONDS,
    )
    assert response.status_code == 200, response.text
    return response.json()


def assert_every_leg_paid_exactly_once(
    sim: SimControl, base_url: str, payment_hashes: list[str], pos_wallet_id: str, api_key: str
) -> list[dict]:
    """Each sale completed, its legs sum to the invoice, each leg's invoice paid once from the POS wallet."""
    transfers = [entry for entry in sim.ledger() if entry["paymentHash"]]
    paid = Counter(entry["paymentHash"] for entry in transfers)
    source = {entry["paymentHash"]: entry["fromWalletId"] for entry in transfers}
    legs = []
    for payment_hash in payment_hashes:
        status = payment_status(base_url, payment_hash, api_key)
        assert status["status"] == "completed", status
        assert sum(leg["sats"] for leg in status["legs"]) == status["invoiceSats"]
        for leg in status["legs"]:
            assert leg["status"] == "succeeded", status
            times = paid[leg["paymentHash"]]
            assert times == 1, f"leg {leg} of sale {payment_hash} paid {times} times"
            assert source[leg["paymentHash"]] == pos_wallet_id
        legs.extend(status["legs"])
    return legs


# --- the tests ------------------------------------------------------------------------------------


def test_concurrent_forwards_split_across_two_instances_pay_every_leg_once(
    instances: list[GunicornInstance], sim: SimControl, pos_account: dict
) -> None:
    merchant = sim.create_account(balance=0)
    tipees = [sim.create_account(balance=0), sim.create_account(balance=0)]
    pos_before = sim.balance(pos_account["btcWalletId"])
    sales, calls_per_sale = 20, 10
    payment_hashes = []
    statuses: Counter = Counter()
    with ThreadPoolExecutor(max_workers=calls_per_sale) as pool:
        for sale in range(sales):
            invoice = create_invoice(
                instances[sale % 2].url,
                sale_body(merchant, 1000 + sale, tip=100 + sale, recipients=tipees),
            )
            sim.pay(invoice["paymentHash"])
            barrier = threading.Barrier(calls_per_sale)

            def call(i: int, payment_hash: str = invoice["paymentHash"], barrier=barrier) -> int:
                barrier.wait(timeout=HTTP_TIMEOUT_SECONDS)
                url = instances[i % 2].url  # alternately to each instance
                return forward_call(url, payment_hash, merchant, fallback=i % 4 == 1).status_code

            answers = list(pool.map(call, range(calls_per_sale)))
            assert set(answers) <= {200, 409} and 200 in answers, answers
            statuses.update(answers)
            payment_hashes.append(invoice["paymentHash"])

    legs = assert_every_leg_paid_exactly_once(
        sim, instances[0].url, payment_hashes, pos_account["btcWalletId"], merchant["apiKey"]
    )
    base = sum(leg["sats"] for leg in legs if leg["kind"] == "base")
    assert sim.balance(merchant["btcWalletId"]) == base == sum(1000 - 100 for _ in range(sales))
    tips = Counter()
    for leg in legs:
        if leg["kind"] == "tip":
            tips[leg["recipient"]] += leg["sats"]
    assert [sim.balance(t["btcWalletId"]) for t in tipees] == [tips[t["username"]] for t in tipees]
    assert sum(tips.values()) == sum(100 + sale for sale in range(sales))
    assert sim.balance(pos_account["btcWalletId"]) == pos_before  # nothing stuck in the POS wallet
    assert statuses[200] >= sales


class SaleStream:
    """Threads that make whole sales (create, pay, forward) on either instance until stopped.

    A connection error (an instance restarting) makes the call go to the other instance; a
    409 forwarding_in_progress or 5xx is retried too. Every invoice a call was answered for is
    recorded, with whether its forward was answered 200.
    """

    def __init__(
        self, urls: list[str], sim: SimControl, merchant: dict, tipee: dict, deadline: float
    ) -> None:
        self.urls = urls
        self.sim = sim
        self.merchant = merchant
        self.tipee = tipee
        self.deadline = deadline
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.created: list[str] = []
        self.forwarded: list[str] = []
        self.connection_errors = 0
        self.errors: list[str] = []
        self._turn = itertools.count()

    def _with_retries(
        self, send: Callable[[str], requests.Response], done: Callable[[int], bool]
    ) -> requests.Response:
        while time.monotonic() < self.deadline:
            url = self.urls[next(self._turn) % len(self.urls)]
            try:
                response = send(url)
            except requests.ConnectionError:
                with self.lock:
                    self.connection_errors += 1
                time.sleep(0.05)
                continue
            if done(response.status_code):
                return response
            time.sleep(0.1)
        raise TimeoutError("the stream ran out of time retrying")

    def one_sale(self, n: int) -> None:
        body = sale_body(self.merchant, 500 + n, tip=50, recipients=[self.tipee])
        created = self._with_retries(
            lambda url: post(f"{url}/api/blink/create-invoice", body), lambda status: status != 503
        )
        if created.status_code != 200:
            self.errors.append(f"create-invoice answered {created.status_code}: {created.text[:200]}")
            return
        payment_hash = created.json()["invoice"]["paymentHash"]
        self.sim.pay(payment_hash)
        with self.lock:
            self.created.append(payment_hash)
        forwarded = self._with_retries(
            lambda url: forward_call(url, payment_hash, self.merchant, fallback=n % 2 == 1),
            lambda status: status == 200 or (status < 500 and status != 409),
        )
        if forwarded.status_code != 200:
            self.errors.append(f"forward answered {forwarded.status_code}: {forwarded.text[:200]}")
            return
        with self.lock:
            self.forwarded.append(payment_hash)

    def run(self, worker: int) -> None:
        for n in itertools.count(worker * 10_000):
            if self.stop.is_set():
                return
            try:
                self.one_sale(n)
            except (TimeoutError, requests.RequestException) as error:
                self.errors.append(f"{type(error).__name__}: {error}")
                return


def test_restarting_an_instance_under_a_stream_of_sales_loses_no_sale(
    instances: list[GunicornInstance], sim: SimControl, pos_account: dict
) -> None:
    merchant = sim.create_account(balance=0)
    tipee = sim.create_account(balance=0)
    pos_before = sim.balance(pos_account["btcWalletId"])
    stream = SaleStream([i.url for i in instances], sim, merchant, tipee, deadline=time.monotonic() + 150)
    producers = [threading.Thread(target=stream.run, args=(worker,), daemon=True) for worker in range(4)]
    for producer in producers:
        producer.start()
    try:
        time.sleep(2)
        sales_before_restart = len(stream.forwarded)
        restarted = instances[1]
        assert restarted.terminate() == 0, restarted.log_tail()
        time.sleep(1)  # sales keep flowing through the other instance meanwhile
        restarted.start()
        restarted.wait_ready()
        time.sleep(2)
    finally:
        stream.stop.set()
        for producer in producers:
            producer.join(timeout=HTTP_TIMEOUT_SECONDS * 2)

    assert stream.errors == []
    assert stream.connection_errors > 0  # the restart really happened while sales were flowing
    assert sales_before_restart > 0
    assert len(stream.forwarded) > sales_before_restart  # sales went on during and after the restart
    assert sorted(stream.forwarded) == sorted(stream.created)  # every paid sale forwarded...
    legs = assert_every_leg_paid_exactly_once(  # ...exactly once
        sim, instances[0].url, stream.created, pos_account["btcWalletId"], merchant["apiKey"]
    )
    assert sim.balance(merchant["btcWalletId"]) == sum(leg["sats"] for leg in legs if leg["kind"] == "base")
    assert sim.balance(tipee["btcWalletId"]) == sum(leg["sats"] for leg in legs if leg["kind"] == "tip")
    assert sim.balance(pos_account["btcWalletId"]) == pos_before
