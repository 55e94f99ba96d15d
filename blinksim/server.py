"""Serve the simulator with gunicorn's threaded worker: ONE process (the state is in memory), many threads."""

from __future__ import annotations

from pathlib import Path

from gunicorn.app.base import BaseApplication


class SimulatorServer(BaseApplication):
    def __init__(self, host: str, port: int, threads: int, log_level: str, state_file: Path | None) -> None:
        self._state_file = state_file
        self._options = {
            "bind": f"{host}:{port}",
            "workers": 1,
            "worker_class": "gthread",
            "threads": threads,
            "worker_connections": 2000,
            "keepalive": 30,
            "timeout": 0,  # a held answer (timeout fault) must not get the worker killed
            "graceful_timeout": 2,
            "loglevel": log_level,
            "accesslog": None,
            "errorlog": "-",
            "proc_name": "blinksim",
        }
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self):  # noqa: ANN201 (gunicorn's signature)
        # Runs in the worker after the fork: the state and the webhook threads live there.
        from blinksim.app import create_app

        if self._state_file is None:
            return create_app()
        from blinksim import snapshot

        app = create_app(snapshot.load(self._state_file))
        snapshot.keep_state(app, self._state_file)
        return app


def serve(
    host: str, port: int, threads: int = 128, log_level: str = "warning", state_file: Path | None = None
) -> None:
    SimulatorServer(host, port, threads, log_level, state_file).run()
