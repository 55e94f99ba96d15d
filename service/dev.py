"""`python -m service dev`: the whole stack in the foreground, its data under `.dev/`, until Ctrl-C.

The app (gunicorn) and the worker write their logs here; the simulator's go to `.dev/blinksim.log`.
`.dev/env` holds the running stack's settings for every other command.
"""

from __future__ import annotations

import argparse
import fcntl
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import IO

import requests

from service.devservers import DevStackError
from service.devstack import Stack, StackOptions

DEMO_OPENING_BALANCE = 100_000
USUAL_PORT = 8080
LOCK_FILE = "dev.lock"
DEV_SERVICE_ENV = {
    # Without a webhook a paid sale is found by polling Blink: after seconds, not half a minute.
    "PENDING_POLL_AFTER_SECONDS": "2",
    "GUNICORN_WORKERS": "2",
}


def stop_like_ctrl_c(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM unwinds like Ctrl-C, so the servers are stopped in order


def run(args: argparse.Namespace, say) -> int:
    options = StackOptions(
        keep=True, host=args.host, service_port=args.port, usual_service_port=USUAL_PORT,
        simulator_port=args.simulator_port,
        with_webhook=True, show_output=True, opening_balance=DEMO_OPENING_BALANCE,
        service_env=DEV_SERVICE_ENV,
    )
    lock = _hold_dev_dir(args.dev_dir)
    if lock is None:
        sys.stderr.write(
            f"blinkpos dev: another `python -m service dev` is running on {args.dev_dir}: use it (its "
            f"settings are in {args.dev_dir / 'env'}), stop it with Ctrl-C, or choose another --dev-dir\n"
        )
        return 1
    stack = Stack(args.dev_dir, options)
    # Set explicitly: a shell that starts us in the background hands SIGINT down ignored.
    previous = {sig: signal.signal(sig, stop_like_ctrl_c) for sig in (signal.SIGINT, signal.SIGTERM)}
    status = 0
    try:
        say("starting PostgreSQL, Valkey, the Blink simulator, the app and the worker "
            "(the first run's initdb takes a few seconds)...")
        stack.start()
        for line in banner(stack):
            say(line)
        while stack.running():
            time.sleep(0.5)
        sys.stderr.write("blinkpos dev: a process of the stack exited (see above); stopping the rest\n")
        status = 1
    except KeyboardInterrupt:
        say("stopping...")
    except DevStackError as error:
        sys.stderr.write(f"blinkpos dev: {error}\n")
        status = 1
    except (OSError, subprocess.SubprocessError, requests.RequestException) as error:
        sys.stderr.write(f"blinkpos dev: could not start the stack ({type(error).__name__}: {error})\n")
        status = 1
    finally:
        for sig in previous:  # a second Ctrl-C must not cut the shutdown short
            signal.signal(sig, signal.SIG_IGN)
        stack.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    say("stopped")
    lock.close()
    return status


def _hold_dev_dir(dev_dir: Path) -> IO[str] | None:
    """An exclusive lock on the directory for this process's life, or None when another dev holds
    it: a second stack on the same data would rewrite `env` and `stack.json` under the first."""
    dev_dir.mkdir(parents=True, exist_ok=True)
    lock = (dev_dir / LOCK_FILE).open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        return None
    return lock


def banner(stack: Stack) -> list[str]:
    assert stack.postgres and stack.valkey and stack.simulator and stack.accounts
    base, simulator = stack.service_url, stack.simulator.base_url
    merchant = stack.accounts.merchant
    tipee = stack.accounts.tipees[0]["username"]
    sale = (
        f'{{"amount": 1100, "currency": "BTC", "baseAmount": 1000, "tipAmount": 100, '
        f'"tipRecipients": [{{"username": "{tipee}", "share": 1}}], "apiKey": "{merchant["apiKey"]}", '
        f'"userWalletId": "{merchant["btcWalletId"]}", "memo": "demo sale"}}'
    )
    take_hash = "python3 -c 'import json,sys; print(json.load(sys.stdin)[\"invoice\"][\"paymentHash\"])'"
    address = stack.lnurl_wallet["lightningAddress"] if stack.lnurl_wallet else None
    address_sale = sale.replace(f'"username": "{tipee}"', f'"username": "{address}"')
    return [
        "",
        f"service     {base}   (health: {base}/api/health)",
        f"postgres    {stack.postgres.url}",
        f"valkey      {stack.valkey.url}",
        f"simulator   {simulator}   (GraphQL: {stack.simulator.graphql_url}; log {stack.dir}/blinksim.log)",
        f"demo merchant  apiKey={merchant['apiKey']}  walletId={merchant['btcWalletId']}",
        "make a sale, then pay it as a customer (the webhook and the worker forward it by themselves):",
        f"  hash=$(curl -s {base}/api/blink/create-invoice -H 'Content-Type: application/json' "
        f"-d '{sale}' | {take_hash})",
        f"  curl -s -X POST {simulator}/sim/invoices/$hash/pay",
        f"  curl -s {base}/api/payment-status/$hash",
        "forward it as the POS page does (a repeat answers alreadyProcessed: true):",
        f"  curl -s {base}/api/blink/forward-with-tips -H 'Content-Type: application/json' "
        "-d '{\"paymentHash\": \"'$hash'\"}'",
        *(
            [
                f"the same sale with its tip to a Lightning Address ({address}, a wallet outside Blink),",
                "paid, then seen with the merchant's key (the leg's receivedSats and routing feeSats):",
                f"  ln_hash=$(curl -s {base}/api/blink/create-invoice -H 'Content-Type: application/json' "
                f"-d '{address_sale}' | {take_hash})",
                f"  curl -s -X POST {simulator}/sim/invoices/$ln_hash/pay",
                f"  curl -s {base}/api/payment-status/$ln_hash -H 'X-API-KEY: {merchant['apiKey']}'",
            ]
            if address
            else []
        ),
        "or run a whole sale with a two-way tip: python -m service demo",
        f"other commands against this stack: set -a; . {stack.env_file}; set +a",
        *(f"note: {note}" for note in stack.notes),
        f"Ctrl-C stops everything (data stays in {stack.dir})",
        "",
    ]
