"""Gunicorn settings for the production app process (`gunicorn -c gunicorn.conf.py wsgi:app`).

Every knob is read from the environment so the same image serves any host size. This file must
stay importable without the app: it imports nothing from `service` and opens no connection.

| variable | default | meaning |
|---|---|---|
| `GUNICORN_BIND` | `0.0.0.0:$PORT` | full bind address; wins over `PORT` |
| `PORT` | `8080` | port when `GUNICORN_BIND` is unset |
| `GUNICORN_WORKERS` | `2 * cores + 1`, at most 8 | worker processes |
| `GUNICORN_THREADS` | `32` | threads per worker |
| `GUNICORN_TIMEOUT` / `GUNICORN_GRACEFUL_TIMEOUT` | `60` / `30` | seconds |
| `GUNICORN_KEEPALIVE` | `5` | seconds; keep above the load balancer's idle timeout if it reuses connections |
| `GUNICORN_MAX_REQUESTS` / `GUNICORN_MAX_REQUESTS_JITTER` | `2000` / `200` | recycle workers |
| `FORWARDED_ALLOW_IPS` | `127.0.0.1,::1` | proxies trusted for `X-Forwarded-Proto` |
| `LOG_LEVEL` | `INFO` | gunicorn's own log level (the app reads it too) |
| `PROMETHEUS_MULTIPROC_DIR` | unset | prometheus-client multi-process mode; the image sets it |
"""

import datetime
import glob
import json
import logging
import os

MAX_DEFAULT_WORKERS = 8  # each worker holds its own Postgres pool: keep connections bounded


def _env_int(name: str, default: int, minimum: int = 0) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return value


def available_cores() -> int:
    """CPUs this container may use: the cgroup v2 quota if one is set, else the affinity mask.

    `os.cpu_count()` reports the host's CPUs, which overcounts badly under a container CPU limit.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    try:
        with open("/sys/fs/cgroup/cpu.max", encoding="ascii") as cpu_max:
            quota, period = cpu_max.read().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, -(-int(quota) // int(period))))  # ceiling division
    except (OSError, ValueError):
        pass
    return max(1, cores)


def default_workers() -> int:
    return min(2 * available_cores() + 1, MAX_DEFAULT_WORKERS)


# --- server socket ---------------------------------------------------------------------------
bind = os.environ.get("GUNICORN_BIND") or f"0.0.0.0:{_env_int('PORT', 8080, minimum=1)}"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")

# --- workers ---------------------------------------------------------------------------------
workers = _env_int("GUNICORN_WORKERS", default_workers(), minimum=1)
# A forward makes several sequential Blink calls (invoice + payment per leg), so a request spends
# most of its time waiting on the network: threads keep a worker useful meanwhile.
worker_class = "gthread"
# 32: measured by `python -m bench` with 100 ms added to every Blink call (a whole sale makes
# eight sequential calls), 8 threads per worker gave 29 sales/s and 32 gave 48 at 128 clients.
threads = _env_int("GUNICORN_THREADS", 32, minimum=1)
# The app is loaded in each worker after fork, never in the master: psycopg pools, Redis clients
# and their background threads do not survive fork(), so create_app() must run in the child.
preload_app = False
timeout = _env_int("GUNICORN_TIMEOUT", 60, minimum=1)
graceful_timeout = _env_int("GUNICORN_GRACEFUL_TIMEOUT", 30, minimum=1)
keepalive = _env_int("GUNICORN_KEEPALIVE", 5, minimum=0)
# Recycling bounds slow leaks; jitter keeps all workers from restarting at the same moment.
max_requests = _env_int("GUNICORN_MAX_REQUESTS", 2000)
max_requests_jitter = _env_int("GUNICORN_MAX_REQUESTS_JITTER", 200)
# The heartbeat file lives in RAM: on a container's overlay filesystem it can stall workers.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
# Nobody operates the app through gunicorn's control socket; do not open one.
control_socket_disable = True

# --- logging: JSON lines on stdout -----------------------------------------------------------
loglevel = os.environ.get("LOG_LEVEL", "INFO").lower()
accesslog = "-"
# Only method, path (no query string), status, size and duration: never a request header, since
# merchants' API keys travel in headers and bodies. JsonLogFormatter picks the same atoms.
access_log_format = '%(m)s %(U)s %(s)s %(B)s %(M)sms'

# gunicorn passes every request header and environ entry as atoms; only these are logged.
ACCESS_LOG_FIELDS = {
    "method": "m",
    "path": "U",
    "status": "s",
    "response_bytes": "B",
    "duration_ms": "M",
    "remote_addr": "h",
    "request_id": "{x-request-id}o",  # the response header, set by the app
}


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line, keyed like service/logging.py's (ts, level, event, logger).

    Access records become structured fields from a fixed allow-list; the app's own formatter takes
    over the root logger in each worker, these records stay with gunicorn's two loggers.
    """

    def format(self, record: logging.LogRecord) -> str:
        created = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
        entry = {
            "ts": created.isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
        }
        if record.name == "gunicorn.access" and isinstance(record.args, dict):
            entry["event"] = "http_access"
            for field, atom in ACCESS_LOG_FIELDS.items():
                value = record.args.get(atom)
                if value in (None, "-"):
                    continue
                entry[field] = int(value) if field == "status" and str(value).isdigit() else value
        else:
            entry["event"] = record.getMessage()
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


_LEVEL = loglevel.upper()
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": JsonLogFormatter}},
    "handlers": {
        "stdout": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"},
    },
    "root": {"level": _LEVEL, "handlers": ["stdout"]},
    "loggers": {
        "gunicorn.error": {"level": _LEVEL, "handlers": ["stdout"], "propagate": False},
        "gunicorn.access": {"level": "INFO", "handlers": ["stdout"], "propagate": False},
    },
}


# --- prometheus-client multi-process mode ----------------------------------------------------
def on_starting(server) -> None:
    """Start each master with an empty metrics directory: files left by a previous run would count twice."""
    metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not metrics_dir:
        return
    os.makedirs(metrics_dir, exist_ok=True)
    for stale in glob.glob(os.path.join(metrics_dir, "*.db")):
        os.remove(stale)


def child_exit(server, worker) -> None:
    """Drop a dead worker's live gauges so /metrics does not report processes that are gone."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    from prometheus_client import multiprocess  # only needed when the mode is on

    multiprocess.mark_process_dead(worker.pid)
