"""The command line: `python -m service <command>`.

    dev            embedded Postgres, Valkey, the simulator, the app and the worker; data under .dev/
    demo           one whole sale with a two-way tip against the running dev stack
    worker         the background worker (payment detection, forwarding retries, expiry)
    splits failed  list failed/stuck splits with their legs (--json)
    splits retry   reset a failed split's legs so the worker retries it (--now: forward at once)
    db upgrade     apply pending migrations to DATABASE_URL
    config check   validate the environment and exit

Each command is a function `(args) -> exit status` registered in `build_parser`, and reads only the
settings it uses. A command that cannot do its job says why in one line on stderr, with what to do,
and exits with a documented status (README, Commands):
    0 done; 1 the command ran and refused or failed (e.g. a retry refused, a demo sale not paid);
    2 bad usage or configuration; 3 a server it needs (Postgres, Redis, Blink, the dev stack) is
    unreachable; 130 interrupted.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from service.config import NEEDS_DATABASE, NEEDS_STORE, ConfigError

EXIT_FAILED, CONFIG_ERROR_EXIT_STATUS, EXIT_UNREACHABLE, EXIT_INTERRUPTED = 1, 2, 3, 130


def say(line: str = "") -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _whole_number(low: int, high: int | None = None):
    """An argparse type: an int in low..high, else a usage error (exit 2) saying the range."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            bounds = f"from {low} to {high}" if high is not None else f"of at least {low}"
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number {bounds}")
        return value
    return parse


_PORT = _whole_number(1, 65535)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m service", description="BlinkPOS payment service")
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")

    dev = commands.add_parser("dev", help="run the whole stack locally (data under .dev/)")
    dev.add_argument("--port", type=_PORT, help="service port (default: the last run's, if free)")
    dev.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    dev.add_argument("--dev-dir", type=Path, default=Path(".dev"), help="where the dev data lives")
    dev.add_argument("--simulator-port", type=_PORT, help="simulator port (default: a free one)")
    dev.set_defaults(handler=run_dev)

    db = commands.add_parser("db", help="database maintenance")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="db-command")
    upgrade = db_commands.add_parser("upgrade", help="apply pending migrations to DATABASE_URL")
    upgrade.set_defaults(handler=run_db_upgrade)

    demo = commands.add_parser("demo", help="one whole sale with a two-way tip against the running dev stack")
    demo.add_argument("--dev-dir", type=Path, default=Path(".dev"), help="where `dev` keeps its data")
    demo.set_defaults(handler=run_demo)

    worker = commands.add_parser("worker", help="run the background worker (payment detection, retries)")
    worker.add_argument("--metrics-port", type=_PORT, default=None, help="serve /metrics on this port")
    worker.add_argument("--metrics-address", default="0.0.0.0", help="interface for --metrics-port")
    worker.add_argument("--heartbeat-file", default=None, help="touched every loop, for a liveness probe")
    worker.set_defaults(handler=run_worker)

    splits = commands.add_parser("splits", help="operator commands for splits that need attention")
    splits_commands = splits.add_subparsers(dest="splits_command", required=True, metavar="splits-command")
    failed = splits_commands.add_parser("failed", help="list failed and stuck splits with their legs")
    failed.add_argument("--json", action="store_true", help="print JSON instead of a table")
    failed.add_argument("--limit", type=_whole_number(1), default=100,
                        help="at most this many splits (default 100)")
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
    import requests
    from redis.exceptions import RedisError

    from service.store.errors import MigrationError, StoreUnavailable

    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except ConfigError as error:
        return fail(f"{error} (README lists every setting)", CONFIG_ERROR_EXIT_STATUS)
    except StoreUnavailable:
        return fail("cannot reach Postgres at DATABASE_URL: start it or fix DATABASE_URL", EXIT_UNREACHABLE)
    except RedisError:
        return fail("cannot reach Redis at REDIS_URL: start it or fix REDIS_URL", EXIT_UNREACHABLE)
    except requests.RequestException as error:
        where = _host_of(error.request.url) if error.request is not None and error.request.url else "a server"
        return fail(f"cannot reach {where}: is `python -m service dev` running?", EXIT_UNREACHABLE)
    except MigrationError as error:
        return fail(f"database upgrade failed: {error}", EXIT_FAILED)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def fail(line: str, status: int) -> int:
    sys.stderr.write(f"blinkpos: {line}\n")
    return status


def _host_of(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).netloc.rsplit("@", 1)[-1] or "a server"


def _configure_logging(config: Any) -> None:
    from service.logging import configure_logging

    configure_logging(config.log_level, config.log_format)


def run_config_check(_args: argparse.Namespace) -> int:
    from service.config import Config

    Config.from_env()
    say("configuration ok")
    return 0


def run_db_upgrade(_args: argparse.Namespace) -> int:
    from service.config import Config
    from service.store import migrations

    config = Config.from_env(require=NEEDS_DATABASE)
    _configure_logging(config)
    migrations.upgrade(config.database_url)
    say(f"database schema at version {migrations.expected_version()}")
    return 0


# --- worker and operator commands -------------------------------------------------------------


def _open_services(require: tuple[str, ...] | None = None) -> Any:
    """The store (and, when the command requires the Blink settings, the payment services)."""
    from service import build_services
    from service.config import REQUIRED_VARIABLES, Config

    config = Config.from_env(require=require)
    _configure_logging(config)
    return build_services(config, with_payments=require is None or require == REQUIRED_VARIABLES)


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

    services = _open_services(NEEDS_STORE)
    try:
        splits = services.store.needing_attention(services.config.forward_lease_seconds, limit=args.limit)
    finally:
        services.close()
    say(operator.as_json(splits) if args.json else operator.as_table(splits))
    return 0


def run_splits_retry(args: argparse.Namespace) -> int:
    from service import operator
    from service.domain.errors import PaymentError
    from service.domain.normalize import normalize_payment_hash

    payment_hash = normalize_payment_hash(args.payment_hash)
    if payment_hash is None:
        return fail(
            f"{args.payment_hash!r} is not a payment hash: give its 64 hexadecimal characters "
            "(`python -m service splits failed` lists them)",
            CONFIG_ERROR_EXIT_STATUS,
        )
    # Without --now the worker does the forwarding: the command needs no Blink settings.
    services = _open_services(None if args.now else NEEDS_STORE)
    try:
        try:
            lease_seconds = services.config.forward_lease_seconds
            legs = operator.reset_for_retry(services.store, payment_hash, lease_seconds)
        except operator.RetryRefused as refused:
            return fail(str(refused), EXIT_FAILED)
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
