"""The command line: `python -m service <command>`.

    dev            embedded Postgres, Valkey, the simulator, the app and the worker; data under .dev/
    demo           one whole sale with a two-way tip against the running dev stack
    worker         the background worker (payment detection, forwarding retries, expiry)
    splits failed  list failed/stuck splits with their legs (--json)
    splits retry   reset a failed split's legs so the worker retries it (--now: forward at once)
    db upgrade     apply pending migrations to DATABASE_URL
    config check   validate the environment and exit (0 ok, 2 with one line naming the problems)

Each command is a function `(args) -> exit status` registered in `build_parser`; add new ones
(demo, worker, splits failed|retry) the same way. Output for humans goes through `say`; logs stay
JSON lines.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from service.config import ConfigError

CONFIG_ERROR_EXIT_STATUS = 2


def say(line: str = "") -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m service", description="BlinkPOS payment service")
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")

    dev = commands.add_parser("dev", help="run the whole stack locally (data under .dev/)")
    dev.add_argument("--port", type=int, default=None, help="service port (default: the last run's, if free)")
    dev.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    dev.add_argument("--dev-dir", type=Path, default=Path(".dev"), help="where the dev data lives")
    dev.add_argument("--simulator-port", type=int, default=None, help="simulator port (default: a free one)")
    dev.set_defaults(handler=run_dev)

    db = commands.add_parser("db", help="database maintenance")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="db-command")
    upgrade = db_commands.add_parser("upgrade", help="apply pending migrations to DATABASE_URL")
    upgrade.set_defaults(handler=run_db_upgrade)

    demo = commands.add_parser("demo", help="one whole sale with a two-way tip against the running dev stack")
    demo.add_argument("--dev-dir", type=Path, default=Path(".dev"), help="where `dev` keeps its data")
    demo.set_defaults(handler=run_demo)

    worker = commands.add_parser("worker", help="run the background worker (payment detection, retries)")
    worker.add_argument("--metrics-port", type=int, default=None, help="serve /metrics on this port")
    worker.add_argument("--metrics-address", default="0.0.0.0", help="interface for --metrics-port")
    worker.add_argument("--heartbeat-file", default=None, help="touched every loop, for a liveness probe")
    worker.set_defaults(handler=run_worker)

    splits = commands.add_parser("splits", help="operator commands for splits that need attention")
    splits_commands = splits.add_subparsers(dest="splits_command", required=True, metavar="splits-command")
    failed = splits_commands.add_parser("failed", help="list failed and stuck splits with their legs")
    failed.add_argument("--json", action="store_true", help="print JSON instead of a table")
    failed.add_argument("--limit", type=int, default=100, help="at most this many splits (default 100)")
    failed.set_defaults(handler=run_splits_failed)
    retry = splits_commands.add_parser("retry", help="reset a failed split's legs for the worker to retry")
    retry.add_argument("payment_hash", help="the split's payment hash (64 hex)")
    retry.add_argument("--now", action="store_true", help="forward it right away instead of via the worker")
    retry.set_defaults(handler=run_splits_retry)

    config = commands.add_parser("config", help="configuration")
    config_commands = config.add_subparsers(dest="config_command", required=True, metavar="config-command")
    check = config_commands.add_parser("check", help="validate the environment's settings")
    check.set_defaults(handler=run_config_check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except ConfigError as error:
        sys.stderr.write(f"blinkpos: {error}\n")
        return CONFIG_ERROR_EXIT_STATUS


def run_config_check(_args: argparse.Namespace) -> int:
    from service.config import Config

    Config.from_env()
    say("configuration ok")
    return 0


def run_db_upgrade(_args: argparse.Namespace) -> int:
    from service.config import database_url_from_env
    from service.logging import configure_logging
    from service.store import migrations

    database_url = database_url_from_env()
    configure_logging(os.environ.get("LOG_LEVEL", "INFO").upper())
    migrations.upgrade(database_url)
    say(f"database schema at version {migrations.expected_version()}")
    return 0


# --- worker and operator commands -------------------------------------------------------------


def _open_services() -> Any:
    from service import build_services
    from service.config import Config
    from service.logging import configure_logging

    config = Config.from_env()
    configure_logging(config.log_level)
    return build_services(config)


def run_worker(args: argparse.Namespace) -> int:
    """Runs until SIGTERM/SIGINT; then finishes the split in hand, releases the rest, exits 0."""
    import threading

    from service.metrics import serve_metrics
    from service.worker import Worker

    services = _open_services()
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda _s, _f: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    server = None
    try:
        if args.metrics_port is not None:
            server = serve_metrics(services.metrics, args.metrics_address, args.metrics_port)
        Worker.from_services(services, heartbeat_file=args.heartbeat_file).run(stop)
    finally:
        if server is not None:
            server.shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        services.close()
    return 0


def run_splits_failed(args: argparse.Namespace) -> int:
    from service import operator

    services = _open_services()
    try:
        splits = services.store.needing_attention(services.config.forward_lease_seconds, limit=args.limit)
    finally:
        services.close()
    say(operator.as_json(splits) if args.json else operator.as_table(splits))
    return 0


def run_splits_retry(args: argparse.Namespace) -> int:
    from service import operator
    from service.domain.errors import PaymentError

    payment_hash = args.payment_hash.strip().lower()
    services = _open_services()
    try:
        try:
            lease_seconds = services.config.forward_lease_seconds
            legs = operator.reset_for_retry(services.store, payment_hash, lease_seconds)
        except operator.RetryRefused as refused:
            sys.stderr.write(f"blinkpos: {refused}\n")
            return 1
        if not args.now:
            say(f"split {payment_hash}: {legs} failed leg(s) reset; the worker will retry it")
            return 0
        try:
            outcome = services.forwarder.forward(payment_hash, source="operator")
        except PaymentError as error:
            say(f"split {payment_hash}: {legs} leg(s) reset; forwarding incomplete ({type(error).__name__})")
            say("the worker will keep retrying; see `python -m service splits failed`")
            return 1
        say(f"split {payment_hash}: forwarded, status {outcome.split.status}")
        return 0
    finally:
        services.close()


def run_dev(args: argparse.Namespace) -> int:
    from service.dev import run

    return run(args, say)


def run_demo(args: argparse.Namespace) -> int:
    from service.demo import DemoFailed, DemoSetup
    from service.demo import run_demo as run_sale

    try:
        run_sale(DemoSetup.load(args.dev_dir), say)
    except DemoFailed as failure:
        sys.stderr.write(f"blinkpos demo: {failure}\n")
        return 1
    return 0
