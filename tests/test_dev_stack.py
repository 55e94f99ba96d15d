"""README's run command as a newcomer meets it: `python -m service dev`, stopped with Ctrl-C and
started again on the same data; the banner's curls make and pay a sale that the webhook and the
worker forward by themselves, the forward-with-tips curl answers alreadyProcessed, and a sale whose
tip goes to a Lightning Address is paid there less the fee; `.dev/env` lets the operator commands
reach the running stack."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from blinksim.control import SimControl
from service.devservers import SimulatorProcess, free_port

REPO_ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_SECONDS = 90

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]


class DevRun:
    """One `python -m service dev` in a process group of its own, as a terminal runs it."""

    def __init__(self, dev_dir: Path, log_path: Path, *args: str) -> None:
        self.log_path = log_path
        with log_path.open("w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "service", "dev", "--dev-dir", str(dev_dir), *args],
                cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while "Ctrl-C stops everything" not in self.output():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.ctrl_c()
                pytest.fail("dev did not start:\n" + self.output())
            time.sleep(0.3)

    def output(self) -> str:
        return self.log_path.read_text()

    def banner_line(self, start: str, containing: str = "") -> str:
        return next(
            line for line in self.output().splitlines()
            if line.strip().startswith(start) and containing in line
        )

    def ctrl_c(self) -> str:
        """What a terminal's Ctrl-C does: SIGINT to the whole foreground process group."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            pytest.fail("dev did not stop within 60 s of Ctrl-C:\n" + self.output())
        return self.output()


def complaints(output: str) -> list[str]:
    """Lines at warning level or above, tracebacks and error lines (JSON logs or plain text)."""
    found = []
    for line in output.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            if re.search(r"(?i)\b(warning|error|traceback|exception)\b", line):
                found.append(line)
            continue
        level = str(record.get("level", "")).lower() if isinstance(record, dict) else ""
        if level in ("warning", "error", "critical"):
            found.append(line)
    return found


@pytest.fixture
def dev_dir() -> Iterator[Path]:
    """Outside pytest's basetemp, whose permissions a concurrent pytest run resets (Postgres runs
    as a system user of its own and must keep reaching its data)."""
    directory = Path(tempfile.mkdtemp(prefix="blinkpos-test-dev-"))
    yield directory / "dev"
    shutil.rmtree(directory, ignore_errors=True)


def test_dev_restarts_on_its_data_and_the_banner_sale_is_forwarded_by_itself(
    dev_dir: Path, tmp_path: Path
) -> None:
    # Not the usual 8080, which a concurrent run may hold; the second run is given no port.
    first = DevRun(dev_dir, tmp_path / "first.log", "--port", str(free_port()))
    try:
        demo = subprocess.run(
            [sys.executable, "-m", "service", "demo", "--dev-dir", str(dev_dir)],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
        )
        merchant_key = first.banner_line("demo merchant")
        service_line = first.banner_line("service ")
        env_before = (dev_dir / "env").read_text()
        # A second dev on the same directory would rewrite env and stack.json under the first.
        again = subprocess.run(
            [sys.executable, "-m", "service", "dev", "--dev-dir", str(dev_dir)],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
        )
        assert again.returncode == 1
        assert again.stderr.strip().splitlines() == [
            f"blinkpos dev: another `python -m service dev` is running on {dev_dir}: use it (its "
            f"settings are in {dev_dir / 'env'}), stop it with Ctrl-C, or choose another --dev-dir"
        ]
        assert (dev_dir / "env").read_text() == env_before
    finally:
        stopped = first.ctrl_c()
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "every sat accounted for" in demo.stdout
    assert "+8500" in demo.stdout  # the merchant's base: 10,000 sats less a 1,500 sat tip
    assert first.process.returncode == 0
    assert stopped.rstrip().endswith("stopped")
    assert complaints(stopped) == [], "Ctrl-C printed an error:\n" + stopped

    second = DevRun(dev_dir, tmp_path / "second.log")
    try:
        assert second.banner_line("demo merchant") == merchant_key, "the simulator's bank came back"
        assert second.banner_line("service ") == service_line, "the same port as the last run"
        make_sale = second.banner_line("hash=$(curl")
        pay = second.banner_line("curl -s -X POST")
        paid = subprocess.run(["bash", "-c", f"set -e; {make_sale}; {pay}; echo; echo \"$hash\""],
                              capture_output=True, text=True, timeout=60)
        assert paid.returncode == 0, paid.stderr
        payment_hash = paid.stdout.split()[-1]
        assert json.loads(paid.stdout.splitlines()[0])["status"] == "PAID"
        status_url = second.banner_line("curl -s http").split()[-1].replace("$hash", payment_hash)
        deadline = time.monotonic() + 30
        while (status := requests.get(status_url, timeout=5).json())["status"] != "completed":
            assert time.monotonic() < deadline, status
            time.sleep(0.5)
        assert [leg["status"] for leg in status["legs"]] == ["succeeded", "succeeded"]
        forward = second.banner_line("curl -s http", "forward-with-tips")
        forwarded = subprocess.run(["bash", "-c", f"hash={payment_hash}; {forward}"],
                                   capture_output=True, text=True, timeout=60)
        assert json.loads(forwarded.stdout)["details"]["alreadyProcessed"] is True, forwarded.stdout

        # The banner's sale whose tip goes to the simulator's Lightning Address wallet resolves at
        # sale time through LNURL_INSECURE_HOSTS; paid, its tip reaches the address less the fee.
        address_sale = second.banner_line("ln_hash=$(curl")
        address_pay = second.banner_line("curl -s -X POST", "$ln_hash")
        address_status_curl = second.banner_line("curl -s http", "$ln_hash")
        made = subprocess.run(
            ["bash", "-c", f"set -e; {address_sale}; {address_pay}; echo; echo \"$ln_hash\""],
            capture_output=True, text=True, timeout=60,
        )
        assert made.returncode == 0, made.stderr
        assert json.loads(made.stdout.splitlines()[0])["status"] == "PAID"
        address_hash = made.stdout.split()[-1]
        deadline = time.monotonic() + 30
        while True:
            shown = subprocess.run(["bash", "-c", f"ln_hash={address_hash}; {address_status_curl}"],
                                   capture_output=True, text=True, timeout=60)
            address_status = json.loads(shown.stdout)
            if address_status["status"] == "completed":
                break
            assert time.monotonic() < deadline, address_status
            time.sleep(0.5)
        tip = address_status["legs"][1]
        assert (tip["kind"], tip["payout"], tip["status"]) == ("tip", "lnurl", "succeeded")
        assert tip["receivedSats"] == 97 and tip["feeSats"] <= 3, tip

        operator = subprocess.run(
            ["bash", "-c", f"set -a; . {dev_dir / 'env'}; set +a; "
             f"{sys.executable} -m service config check && {sys.executable} -m service splits failed"],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
        )
        assert operator.returncode == 0, operator.stdout + operator.stderr
        assert "configuration ok" in operator.stdout, "every required setting is in .dev/env"
        assert "no splits need attention" in operator.stdout
    finally:
        output = second.ctrl_c()
    assert complaints(output) == [], "warnings between start and stop:\n" + output
    assert output.rstrip().endswith("stopped")


def test_the_simulator_keeps_its_bank_in_the_state_file_across_a_restart(tmp_path: Path) -> None:
    state_file = tmp_path / "bank.pickle"
    port = free_port()
    process = SimulatorProcess(port, tmp_path / "sim.log", threads=4, state_file=state_file)
    process.start()
    try:
        sim = SimControl(process.base_url)
        node_key = sim.health()["nodePubkey"]
        account = sim.create_account("kept_account", balance=700)
        invoice = sim.create_invoice(account["apiKey"], account["btcWalletId"], 300)["invoice"]
        sim.pay(invoice["paymentHash"])
    finally:
        process.stop()

    process = SimulatorProcess(port, tmp_path / "sim.log", threads=4, state_file=state_file)
    process.start()
    try:
        sim = SimControl(process.base_url)
        assert sim.health()["nodePubkey"] == node_key, "its invoices are signed by the same node"
        assert sim.balance(account["btcWalletId"]) == 1000
        again = sim.create_invoice(account["apiKey"], account["btcWalletId"], 5)
        assert again["errors"] == [] and again["invoice"]["paymentHash"], "the key still works"
        assert sim.invoice(invoice["paymentHash"])["status"] == "PAID"
        assert len(sim.ledger()) == 2
    finally:
        process.stop()


def test_demo_without_a_stack_says_so_in_one_line(tmp_path: Path) -> None:
    demo = subprocess.run(
        [sys.executable, "-m", "service", "demo", "--dev-dir", str(tmp_path)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
    )
    assert demo.returncode == 1
    assert demo.stderr.count("\n") == 1 and "python -m service dev" in demo.stderr


def test_a_port_in_use_stops_dev_before_anything_starts(dev_dir: Path) -> None:
    # Otherwise gunicorn retries the port while the readiness check reaches whatever holds it,
    # and the banner points at that other server.
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "service", "dev", "--dev-dir", str(dev_dir), "--port", str(port)],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
        )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"blinkpos dev: port {port} on 127.0.0.1 is already in use (another `python -m service dev`?): "
        "stop that or choose another with --port"
    ]
    assert "Ctrl-C stops everything" not in result.stdout
    assert not (dev_dir / "postgres").exists() and not (dev_dir / "env").exists(), "nothing started"


def test_without_the_blink_schema_dev_says_where_it_looked_and_what_to_do(dev_dir: Path) -> None:
    # A clone without ../shared beside it: the simulator cannot build its GraphQL schema.
    dev_dir.mkdir(parents=True)
    (dev_dir / "blinksim.log").write_text("a line of an earlier run\n")
    missing = dev_dir / "nowhere" / "public-schema.graphql"
    result = subprocess.run(
        [sys.executable, "-m", "service", "dev", "--dev-dir", str(dev_dir)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "BLINK_SCHEMA_PATH": str(missing)},
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stderr.strip().splitlines() == [
        f"blinkpos dev: the simulator exited while starting: blinksim: no Blink schema at {missing}: "
        "put the shared docs (../shared) beside the repository, or set BLINK_SCHEMA_PATH to the "
        f"public-schema.graphql file (see {dev_dir / 'blinksim.log'})"
    ]
