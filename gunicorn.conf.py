"""gunicorn settings: `gunicorn -c gunicorn.conf.py wsgi:app`. The knobs are environment variables
read by service.config.ServerConfig (README's configuration table); each worker builds the app."""

import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # gunicorn may run from elsewhere
from service.config import ConfigError, ServerConfig  # noqa: E402
from service.logging import gunicorn_logconfig  # noqa: E402

try:
    settings = ServerConfig.from_env()
except ConfigError as error:
    sys.stderr.write(f"blinkpos: {error}\n")
    raise SystemExit(2) from None

bind = settings.bind
forwarded_allow_ips = settings.forwarded_allow_ips
workers = settings.workers
# A forward waits on several Blink calls in a row: threads keep a worker useful meanwhile.
worker_class = "gthread"
threads = settings.gunicorn_threads
preload_app = False  # pools, clients and their threads do not survive fork()
timeout = settings.gunicorn_timeout
graceful_timeout = settings.gunicorn_graceful_timeout
keepalive = settings.gunicorn_keepalive
# Recycling bounds slow leaks; jitter keeps the workers from restarting all at once.
max_requests = settings.gunicorn_max_requests
max_requests_jitter = settings.gunicorn_max_requests_jitter
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # an overlay fs can stall heartbeats
control_socket_disable = True  # nobody operates the app through gunicorn's control socket
loglevel = settings.log_level.lower()
logconfig_dict = gunicorn_logconfig(settings.log_level, settings.log_format)
_private_dirs: list[str] = []  # made by on_starting, removed by on_exit


def on_starting(server) -> None:
    """All workers write metrics into one directory, emptied here, so /metrics sums them all
    and never a previous run's. Without PROMETHEUS_MULTIPROC_DIR the master makes a private one."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        _private_dirs.append(tempfile.mkdtemp(prefix="blinkpos-metrics-"))
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = _private_dirs[-1]  # inherited by the workers
    metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    shutil.rmtree(metrics_dir, ignore_errors=True)  # a mount point stays, emptied
    os.makedirs(metrics_dir, exist_ok=True)


def child_exit(server, worker) -> None:
    """Drop a dead worker's live gauges so /metrics does not report processes that are gone."""
    from prometheus_client import multiprocess  # imported once the directory is set

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server) -> None:  # the private metrics directory goes with the master
    for directory in _private_dirs:
        shutil.rmtree(directory, ignore_errors=True)
