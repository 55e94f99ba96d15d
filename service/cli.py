"""The command line: `python -m service <command>`.

    dev            embedded Postgres + Valkey (+ simulator), the worker and the app, data under .dev/
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
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import requests

from service.config import ConfigError

CONFIG_ERROR_EXIT_STATUS = 2


def say(line: str = "") -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m service", description="BlinkPOS payment service")
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")

    dev = commands.add_parser("dev", help="run the whole stack locally (data under .dev/)")
    dev.add_argument("--port", type=int, default=8080, help="HTTP port of the service (default 8080)")
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


# --- dev ------------------------------------------------------------------------------------


@dataclass
class DevAccounts:
    """What the simulator seeding produced: the POS wallet the service uses, plus demo accounts."""

    pos_api_key: str
    pos_wallet_id: str
    demo: dict[str, dict[str, Any]] = field(default_factory=dict)  # username -> /sim/accounts answer


PLACEHOLDER_ACCOUNTS = DevAccounts(pos_api_key="dev-no-simulator", pos_wallet_id="dev-no-simulator")
DEMO_USERNAMES = ("demo_merchant", "alice", "bob")
POS_USERNAME = "blinkpos"


def seed_simulator(simulator_url: str) -> DevAccounts:
    """HOOK (simulator seeding): the POS account, a demo merchant and tip recipients alice and bob.

    Uses the simulator's control API (DESIGN §6: POST /sim/accounts). The simulator's owner may
    replace this with richer seeding (balances, webhooks); keep the return type.
    """
    answers: dict[str, dict[str, Any]] = {}
    for username in (POS_USERNAME, *DEMO_USERNAMES):
        body: dict[str, Any] = {"username": username}
        if username != POS_USERNAME:
            body["balance"] = 100_000
        response = requests.post(f"{simulator_url}/sim/accounts", json=body, timeout=5)
        response.raise_for_status()
        answers[username] = response.json()
    pos = answers.pop(POS_USERNAME)
    return DevAccounts(pos_api_key=pos["apiKey"], pos_wallet_id=pos["btcWalletId"], demo=answers)


def start_dev_worker(app: Any) -> Any | None:
    """The background worker in a thread of the dev process; returns it (it has stop()).

    In dev the simulator sends no webhook, so pending sales are polled at Blink after a few
    seconds (not PENDING_POLL_AFTER_SECONDS): a paid sale is forwarded with nobody calling forward.
    """
    from service.worker import Worker, WorkerThread

    services = app.extensions["blinkpos"]
    poll_after = min(services.config.pending_poll_after_seconds, DEV_PENDING_POLL_AFTER_SECONDS)
    return WorkerThread(Worker.from_services(services, pending_poll_after_seconds=poll_after)).start()


DEV_PENDING_POLL_AFTER_SECONDS = 2


# --- worker and operator commands -------------------------------------------------------------


def _open_services() -> Any:
    from service import build_services
    from service.config import Config
    from service.logging import configure_logging

    config = Config.from_env()
    configure_logging(config.log_level)
    return build_services(config)


def run_worker(_args: argparse.Namespace) -> int:
    """Runs until SIGTERM/SIGINT; then finishes the split in hand, releases the rest, exits 0."""
    import threading

    from service.worker import Worker

    services = _open_services()
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda _s, _f: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        Worker.from_services(services).run(stop)
    finally:
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


def dev_config(
    database_url: str,
    redis_url: str,
    blink_api_url: str,
    accounts: DevAccounts,
    key: str,
    webhook_secret: str | None = None,
) -> Any:
    """The environment, with the dev stack's servers and accounts laid over it."""
    from service.config import Config

    overlay = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "BLINK_API_URL": blink_api_url,
        "BLINKPOS_API_KEY": accounts.pos_api_key,
        "BLINKPOS_BTC_WALLET_ID": accounts.pos_wallet_id,
        "API_KEY_ENCRYPTION_KEY": key,
    }
    if webhook_secret:
        overlay["BLINK_WEBHOOK_SECRET"] = webhook_secret
    return Config.from_env({"ENVIRONMENT": "development", **os.environ, **overlay})


def _stop_on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # unwinds serve_forever like Ctrl-C, so the finally blocks run


def _ignore_stop_signals() -> None:
    """While shutting down, a second Ctrl-C or SIGTERM must not cut the cleanup short."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def run_dev(args: argparse.Namespace) -> int:
    from werkzeug.serving import make_server

    from service import create_app
    from service.devstack import DevStack, dev_encryption_key
    from service.store import migrations

    previous_handlers = signal.getsignal(signal.SIGINT), signal.signal(signal.SIGTERM, _stop_on_sigterm)
    stack = DevStack(dev_dir=args.dev_dir, simulator_port=args.simulator_port)
    app = server = worker = None
    try:
        say("starting embedded PostgreSQL and Valkey (first run: initdb takes a few seconds)...")
        stack.start()
        assert stack.postgres is not None and stack.valkey is not None
        migrations.upgrade(stack.postgres.url)
        webhook_secret = None
        if stack.simulator is not None:
            accounts = seed_simulator(stack.simulator.base_url)
            blink_api_url = stack.simulator.graphql_url
            webhook_secret = dev_webhook_secret()
        else:
            accounts, blink_api_url = PLACEHOLDER_ACCOUNTS, "http://127.0.0.1:9/graphql"
        config = dev_config(
            stack.postgres.url,
            stack.valkey.url,
            blink_api_url,
            accounts,
            dev_encryption_key(stack.dev_dir),
            webhook_secret,
        )
        app = create_app(config)
        worker = start_dev_worker(app)
        server = make_server(args.host, args.port, app, threaded=True)
        if stack.simulator is not None:
            service_url = f"http://{args.host}:{server.server_port}"
            connect_dev_webhooks(
                stack.simulator.base_url, service_url, webhook_secret, accounts.pos_wallet_id
            )
            write_demo_setup(stack, service_url, accounts)
        _print_dev_summary(args, stack, accounts)
        server.serve_forever()
    except KeyboardInterrupt:
        say("stopping...")
    finally:
        _ignore_stop_signals()
        if server is not None:
            server.server_close()
        if worker is not None:
            worker.stop()
        if app is not None:
            app.extensions["blinkpos"].close()
        stack.stop()
        signal.signal(signal.SIGINT, previous_handlers[0])
        signal.signal(signal.SIGTERM, previous_handlers[1])
    say("stopped")
    return 0


def dev_webhook_secret() -> str:
    """A fresh Svix-style secret per dev run: the simulator signs with it, the service verifies."""
    import base64
    import secrets

    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def connect_dev_webhooks(
    simulator_url: str, service_url: str, secret: str | None, pos_wallet_id: str
) -> None:
    """Point the simulator's payment webhooks at the service, as Blink's dashboard would."""
    response = requests.post(
        f"{simulator_url}/sim/webhooks",
        json={"url": f"{service_url}/api/blink/webhook", "secret": secret, "walletId": pos_wallet_id},
        timeout=5,
    )
    response.raise_for_status()


def write_demo_setup(stack: Any, service_url: str, accounts: DevAccounts) -> None:
    from service.demo import DemoSetup, write_setup

    write_setup(
        stack.dev_dir,
        DemoSetup(
            service_url=service_url,
            simulator_url=stack.simulator.base_url,
            pos_wallet_id=accounts.pos_wallet_id,
            accounts=accounts.demo,
        ),
    )


def run_demo(args: argparse.Namespace) -> int:
    from service.demo import DemoFailed, DemoSetup
    from service.demo import run_demo as run_sale

    try:
        run_sale(DemoSetup.load(args.dev_dir), say)
    except DemoFailed as failure:
        sys.stderr.write(f"blinkpos demo: {failure}\n")
        return 1
    return 0


def _print_dev_summary(args: argparse.Namespace, stack: Any, accounts: DevAccounts) -> None:
    base = f"http://{args.host}:{args.port}"
    say()
    say(f"service     {base}   (health: {base}/api/health)")
    say(f"postgres    {stack.postgres.url}")
    say(f"valkey      {stack.valkey.url}")
    if stack.simulator is not None:
        say(f"simulator   {stack.simulator.base_url}   (GraphQL: {stack.simulator.graphql_url})")
        merchant = accounts.demo.get("demo_merchant")
        if merchant:
            say(f"demo merchant  apiKey={merchant['apiKey']}  walletId={merchant['btcWalletId']}")
            say("make a sale:")
            say(
                f"  curl -s {base}/api/blink/create-invoice -H 'Content-Type: application/json' -d "
                f'\'{{"amount": 1100, "currency": "BTC", "baseAmount": 1000, "tipAmount": 100, '
                f'"tipRecipient": "alice", "apiKey": "{merchant["apiKey"]}", '
                f'"userWalletId": "{merchant["btcWalletId"]}", "memo": "demo sale"}}\''
            )
    for note in stack.notes:
        say(f"note: {note}")
    say("Ctrl-C stops everything (data stays in .dev/)")
    say()
