"""The whole stack as production runs it, for the benchmarks and the chaos run: `service.devstack.Stack`
in a scratch directory (gunicorn with gunicorn.conf.py, the worker as its own process, every log in
a file so a benchmark prints only its tables), plus the simulator's control client and the chaos
actions: kill a gunicorn worker, crash Valkey, restart Postgres.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from blinksim.control import SimControl
from service.devservers import DevStackError
from service.devstack import Stack
from service.devstack import StackOptions as ServiceStackOptions

SIMULATOR_THREADS = 256  # the 128-client latency run holds one simulator thread per delayed call
BENCH_USERNAMES = ("bench_pos", "bench_merchant", "bench_alice", "bench_bob")


@dataclass(frozen=True)
class StackOptions:
    """Knobs of one bench stack; `service_env` is laid over the production defaults of the service."""

    gunicorn_workers: int | None = None  # None: gunicorn.conf.py's default (2 * cores + 1)
    gunicorn_threads: int | None = None  # None: gunicorn.conf.py's default
    with_worker: bool = True
    with_webhook: bool = False  # the simulator posts signed payment webhooks to the service
    service_env: dict[str, str] = field(default_factory=dict)


class BenchStack(Stack):
    """Start with `with BenchStack(work_dir, options) as stack:`; everything stops on exit."""

    def __init__(self, work_dir: Path, options: StackOptions | None = None) -> None:
        options = options or StackOptions()
        env = {
            "ENVIRONMENT": "benchmark",
            # One merchant wallet and one client IP sell for every simulated till: the per-wallet
            # and per-IP limits would otherwise cap the run at 60 sales a minute.
            "RATE_LIMIT_PER_WALLET_PER_MINUTE": "100000000",
            "RATE_LIMIT_PER_IP_PER_MINUTE": "100000000",
            "RATE_LIMIT_FORWARD_PER_IP_PER_MINUTE": "100000000",
            "RATE_LIMIT_FORWARD_PER_HASH_PER_MINUTE": "100000000",
            "PROMETHEUS_MULTIPROC_DIR": str(Path(work_dir).resolve() / "prometheus"),
        }
        if options.gunicorn_workers is not None:
            env["GUNICORN_WORKERS"] = str(options.gunicorn_workers)
        if options.gunicorn_threads is not None:
            env["GUNICORN_THREADS"] = str(options.gunicorn_threads)
        super().__init__(work_dir, ServiceStackOptions(
            with_worker=options.with_worker, with_webhook=options.with_webhook,
            simulator_threads=SIMULATOR_THREADS, usernames=BENCH_USERNAMES,
            service_env={**env, **options.service_env},
        ))
        self.sim: SimControl | None = None

    def start(self) -> None:
        (self.dir / "prometheus").mkdir(parents=True, exist_ok=True)
        super().start()
        assert self.simulator is not None
        self.sim = SimControl(self.simulator.base_url)

    def restart_worker(self) -> None:
        """Starts the worker process again (after it died), with the same environment."""
        self.start_worker()

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
            raise DevStackError("no gunicorn worker to kill")
        os.kill(pids[0], signal.SIGKILL)
        return pids[0]

    def kill_valkey(self) -> None:
        """SIGKILL, as a crash would: no shutdown save, the hot copies are gone."""
        assert self.valkey is not None
        self.valkey.kill()

    def start_valkey(self) -> None:
        assert self.valkey is not None
        self.valkey.start()

    def stop_postgres(self) -> None:
        assert self.postgres is not None
        self.postgres.stop("fast")

    def start_postgres(self) -> None:
        assert self.postgres is not None
        self.postgres.start()
