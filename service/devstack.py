"""Every server of the service on this machine, for `python -m service dev`, the benchmarks and the tests.

Never imported by the app or the worker. `Stack` starts what `StackOptions` asks for: embedded
PostgreSQL (migrated), embedded Valkey, the Blink simulator seeded with the POS account, a merchant
and two tip recipients, gunicorn (gunicorn.conf.py, as production runs it) and the worker process
(the servers themselves: `service.devservers`). The service's settings are one overlay,
`Stack.settings`: the app and the worker get it in their environment, and `<dir>/env` records it
for any other command. With `keep=True` (dev) the data, the ports, the accounts and the
simulator's bank stay in the directory from one run to the next.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from service.devservers import (
    LOCALHOST,
    ChildProcess,
    DevStackError,
    EmbeddedPostgres,
    EmbeddedValkey,
    SimulatorProcess,
    free_port,
    port_if_free,
    write_private,
)
from service.store.fingerprints import generate_key

STARTUP_TIMEOUT_SECONDS = 60.0
MEMORY_FILE = "stack.json"  # what the next run must find again: ports, accounts, webhook secret
ENV_FILE = "env"
KEY_FILE = "api-key-encryption-key"
SIMULATOR_STATE_FILE = "blinksim-state.pickle"


@dataclass(frozen=True)
class Accounts:
    """The simulator accounts of the stack, each a /sim/accounts answer (apiKey, btcWalletId, ...)."""

    pos: dict[str, Any]
    merchant: dict[str, Any]
    tipees: tuple[dict[str, Any], ...]

    def all(self) -> list[dict[str, Any]]:
        return [self.pos, self.merchant, *self.tipees]


@dataclass(frozen=True)
class StackOptions:
    """What to start and how. `service_env` is laid over the stack's own settings of the service."""

    keep: bool = False  # data, ports, accounts and the simulator's bank stay in the directory
    host: str = LOCALHOST
    service_port: int | None = None  # None: the last run's port, else usual_service_port, else any (free)
    usual_service_port: int | None = None
    simulator_port: int | None = None
    with_app: bool = True
    with_worker: bool = True
    with_webhook: bool = False  # the simulator posts signed payment webhooks to the service
    show_output: bool = False  # the app and the worker write to our output instead of log files
    simulator_threads: int = 128
    usernames: tuple[str, ...] = ("blinkpos", "demo_merchant", "alice", "bob")  # POS, merchant, tipees
    lnurl_wallet: str = "carol"  # a wallet outside Blink on the simulator, paid at its Lightning Address
    opening_balance: int = 0  # of the merchant and the tipees; the POS wallet always starts empty
    service_env: dict[str, str] = field(default_factory=dict)


class Stack:
    """`with Stack(work_dir, options) as stack:` starts the servers; leaving it (by any path) stops them."""

    def __init__(self, work_dir: Path, options: StackOptions | None = None) -> None:
        self.dir = Path(work_dir).resolve()
        self.options = options or StackOptions()
        self.postgres: EmbeddedPostgres | None = None
        self.valkey: EmbeddedValkey | None = None
        self.simulator: SimulatorProcess | None = None
        self.gunicorn: ChildProcess | None = None
        self.worker: ChildProcess | None = None
        self.accounts: Accounts | None = None
        self.lnurl_wallet: dict[str, Any] | None = None  # a /sim/lnurl-wallets answer (lightningAddress, ...)
        self.service_url = ""
        self.settings: dict[str, str] = {}
        self.notes: list[str] = []

    def __enter__(self) -> Stack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    @property
    def encryption_key(self) -> str:
        return self.settings["API_KEY_ENCRYPTION_KEY"]

    @property
    def env_file(self) -> Path:
        return self.dir / ENV_FILE

    def start(self) -> None:
        from service.store import migrations

        options = self.options
        # Checked before anything starts: gunicorn would otherwise retry the port in the
        # background while the readiness check is answered by whatever already holds it.
        for port, host, option in ((options.service_port, options.host, "--port"),
                                   (options.simulator_port, LOCALHOST, "--simulator-port")):
            if port and port_if_free(port, host) is None:
                raise DevStackError(f"port {port} on {host} is already in use (another `python -m "
                                    f"service dev`?): stop that or choose another with {option}")
        self.dir.mkdir(parents=True, exist_ok=True)
        memory = self._recall()
        ports = memory.get("ports", {})
        self.postgres = EmbeddedPostgres(self.dir / "postgres", delete_on_close=not options.keep)
        migrations.upgrade(self.postgres.url)
        self.valkey = EmbeddedValkey(self.dir / "valkey", port=port_if_free(ports.get("valkey")),
                                     persist=options.keep)
        self.valkey.start()
        simulator_port = options.simulator_port or port_if_free(ports.get("simulator")) or free_port()
        state_file = self.dir / SIMULATOR_STATE_FILE if options.keep else None
        self.simulator = SimulatorProcess(simulator_port, self.dir / "blinksim.log",
                                          options.simulator_threads, state_file)
        self.simulator.start()
        self.accounts = self._open_accounts(memory.get("accounts", []))
        self.lnurl_wallet = self._open_lnurl_wallet(options.lnurl_wallet)
        service_port = (
            options.service_port
            or port_if_free(ports.get("service"), options.host)
            or port_if_free(options.usual_service_port, options.host)
            or free_port()
        )
        self.service_url = f"http://{options.host}:{service_port}"
        self.settings = self._settings(memory.get("webhookSecret"))
        self._remember({"service": service_port, "simulator": simulator_port, "valkey": self.valkey.port})
        if options.with_webhook:
            self._connect_webhook()
        if options.with_app:
            self._start_gunicorn(f"{options.host}:{service_port}")
        if options.with_worker:
            self.start_worker()

    def stop(self) -> None:
        """Stops in reverse order of start; each step runs even if an earlier one failed."""
        for name in ("worker", "gunicorn", "simulator", "valkey", "postgres"):
            server = getattr(self, name)
            if server is None:
                continue
            try:
                server.close() if name in ("valkey", "postgres") else server.stop()
            except (OSError, subprocess.SubprocessError, RuntimeError) as exc:
                sys.stderr.write(f"stack: stopping {name} failed: {type(exc).__name__}: {exc}\n")
            setattr(self, name, None)

    def running(self) -> bool:
        """Whether every process the stack started is still running."""
        return all(process.running() for process in (self.simulator, self.gunicorn, self.worker) if process)

    # --- the service's settings ---------------------------------------------------------------

    def _settings(self, remembered_secret: str | None) -> dict[str, str]:
        from service.config import VARIABLES

        assert self.postgres and self.valkey and self.simulator and self.accounts
        keep = self.options.keep
        secret = (keep and remembered_secret) or "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        settings = {"ENVIRONMENT": "development"}
        settings |= {name: os.environ[name] for name in VARIABLES if os.environ.get(name)}  # LOG_LEVEL, ...
        settings |= {
            "DATABASE_URL": self.postgres.url,
            "REDIS_URL": self.valkey.url,
            "BLINK_API_URL": self.simulator.graphql_url,
            "BLINKPOS_API_KEY": self.accounts.pos["apiKey"],
            "BLINKPOS_BTC_WALLET_ID": self.accounts.pos["btcWalletId"],
            "API_KEY_ENCRYPTION_KEY": kept_encryption_key(self.dir) if keep else generate_key(),
            "BLINK_WEBHOOK_SECRET": secret,
            "LNURL_INSECURE_HOSTS": f"{LOCALHOST}:{self.simulator.port}",  # the simulator's wallets
            **self.options.service_env,
        }
        header = "# The running stack's settings: `set -a; . {}; set +a` before any command.\n"
        body = "".join(f"{name}={shlex.quote(value)}\n" for name, value in settings.items())
        write_private(self.env_file, header.format(self.env_file) + body)
        return settings

    def process_env(self, **extra: str) -> dict[str, str]:
        """Our environment with the stack's settings laid over it, for the app and the worker."""
        return {**os.environ, **self.settings, "PYTHONUNBUFFERED": "1", **extra}

    # --- processes ----------------------------------------------------------------------------

    def _log(self, name: str) -> Path | None:
        return None if self.options.show_output else self.dir / f"{name}.log"

    def _start_gunicorn(self, bind: str) -> None:
        self.gunicorn = ChildProcess(
            "gunicorn", [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
            self.process_env(GUNICORN_BIND=bind), self._log("gunicorn"),
        )
        self.gunicorn.start()
        self.wait_ready()

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT_SECONDS) -> None:
        """Until /readyz answers 200 (every gunicorn worker shares the port, so one answer suffices)."""
        assert self.gunicorn is not None
        ready = f"{self.service_url}/readyz"
        self.gunicorn.wait_until(lambda: requests.get(ready, timeout=1).status_code == 200, timeout)

    def start_worker(self) -> None:
        """Starts the worker process (again, after it died), with the stack's settings."""
        if self.worker is not None:
            self.worker.stop()
        self.worker = ChildProcess("the worker", [sys.executable, "-m", "service", "worker"],
                                   self.process_env(), self._log("worker"))
        self.worker.start()
        time.sleep(0.5)
        if not self.worker.running():
            where = self.worker.log_path or "its output above"
            raise DevStackError(f"the worker exited at start; see {where}")

    # --- simulator accounts and what the next run finds again ---------------------------------

    def _open_accounts(self, remembered: list[dict[str, Any]]) -> Accounts:
        """The remembered accounts the simulator still knows; new ones for the rest."""
        known = {account["username"]: account for account in remembered} if self.options.keep else {}
        accounts, opened = [], []
        for index, username in enumerate(self.options.usernames):
            account = known.get(username)
            if account is None or not self._simulator_knows(account):
                balance = self.options.opening_balance if index else 0
                account = self._open_account(username, balance)
                opened.append(username)
            accounts.append(account)
        if known and opened:
            self.notes.append(
                f"the simulator's bank had lost {', '.join(opened)}: opened again with new keys and "
                f"balances; sales made before cannot be forwarded"
            )
        return Accounts(accounts[0], accounts[1], tuple(accounts[2:]))

    def _simulator_knows(self, account: dict[str, Any]) -> bool:
        assert self.simulator is not None
        url = f"{self.simulator.base_url}/sim/wallets/{account['btcWalletId']}"
        return requests.get(url, timeout=5).status_code == 200

    def _open_account(self, username: str, balance: int) -> dict[str, Any]:
        assert self.simulator is not None
        response = requests.post(f"{self.simulator.base_url}/sim/accounts",
                                 json={"username": username, "balance": balance}, timeout=5)
        if response.status_code == 409:
            raise DevStackError(
                f"the simulator has an account {username} whose key {self.dir / MEMORY_FILE} lost; "
                f"delete {self.dir / SIMULATOR_STATE_FILE} for a fresh bank"
            )
        response.raise_for_status()
        return response.json()

    def _open_lnurl_wallet(self, name: str) -> dict[str, Any]:
        """The simulator's foreign wallet `name` (LNURL-pay, reached through LNURL_INSECURE_HOSTS),
        the one a kept bank still has or a new one."""
        assert self.simulator is not None
        url = f"{self.simulator.base_url}/sim/lnurl-wallets"
        known = requests.get(f"{url}/{name}", timeout=5)
        if known.status_code == 200:
            return known.json()
        created = requests.post(url, json={"name": name}, timeout=5)
        created.raise_for_status()
        return created.json()

    def _connect_webhook(self) -> None:
        """Point the simulator's payment webhooks at the service, as Blink's dashboard would."""
        assert self.simulator is not None and self.accounts is not None
        body = {"url": f"{self.service_url}/api/blink/webhook", "walletId": self.accounts.pos["btcWalletId"],
                "secret": self.settings["BLINK_WEBHOOK_SECRET"]}
        requests.post(f"{self.simulator.base_url}/sim/webhooks", json=body, timeout=5).raise_for_status()

    def _recall(self) -> dict[str, Any]:
        path = self.dir / MEMORY_FILE
        if not self.options.keep or not path.exists():
            return {}
        try:
            return json.loads(path.read_text())
        except ValueError:
            self.notes.append(f"{path} was unreadable: new ports and accounts")
            return {}

    def _remember(self, ports: dict[str, int]) -> None:
        assert self.simulator is not None and self.accounts is not None
        memory = {
            "serviceUrl": self.service_url,
            "simulatorUrl": self.simulator.base_url,
            "ports": ports,
            "webhookSecret": self.settings["BLINK_WEBHOOK_SECRET"],
            "accounts": self.accounts.all(),
        }
        write_private(self.dir / MEMORY_FILE, json.dumps(memory, indent=2) + "\n")


def kept_encryption_key(directory: Path) -> str:
    """The fingerprint secret kept in the directory, so stored sales keep their merchants."""
    key_file = directory / KEY_FILE
    if not key_file.exists():
        write_private(key_file, generate_key() + "\n")
    return key_file.read_text().strip()


def recall_accounts(directory: Path) -> tuple[dict[str, Any], Accounts]:
    """What a running (or the last) stack in `directory` remembered: (its memory, its accounts)."""
    memory = json.loads((directory / MEMORY_FILE).read_text())
    accounts = memory["accounts"]
    return memory, Accounts(accounts[0], accounts[1], tuple(accounts[2:]))
