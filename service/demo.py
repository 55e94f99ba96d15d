"""`python -m service demo`: one whole sale with a two-way tip against the running dev stack.

`python -m service dev` remembers its URLs and the simulator's accounts in `.dev/stack.json`;
the demo reads it, makes a sale over HTTP exactly as the POS page would, pays
the invoice as a customer through the simulator, forwards it, and prints every wallet's balance
before and after, checking that the sats add up. It talks only HTTP: the dev stack's keys are
simulator keys, never real ones.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from service.devstack import MEMORY_FILE, Accounts, recall_accounts

SALE_SATS = 10_000
TIP_SATS = 1_500
TIP_SHARES = (2, 1)  # of the stack's two tip recipients
TIMEOUT = 10


class DemoFailed(Exception):
    """The demo could not run or the balances did not add up."""


@dataclass(frozen=True)
class DemoSetup:
    service_url: str
    simulator_url: str
    accounts: Accounts

    @classmethod
    def load(cls, dev_dir: Path) -> DemoSetup:
        try:
            memory, accounts = recall_accounts(dev_dir)
        except FileNotFoundError:
            raise DemoFailed(
                f"{dev_dir / MEMORY_FILE} not found: start the stack first with `python -m service dev`"
            ) from None
        return cls(service_url=memory["serviceUrl"], simulator_url=memory["simulatorUrl"], accounts=accounts)


def run_demo(setup: DemoSetup, say) -> None:
    accounts = setup.accounts
    merchant = accounts.merchant
    wallets = {f"pos ({accounts.pos['username']})": accounts.pos["btcWalletId"]}
    wallets.update({account["username"]: account["btcWalletId"] for account in accounts.all()[1:]})
    before = {name: _balance(setup, wallet) for name, wallet in wallets.items()}

    body = {
        "amount": SALE_SATS,
        "currency": "BTC",
        "memo": "Demo sale: two coffees",
        "apiKey": merchant["apiKey"],
        "userWalletId": merchant["btcWalletId"],
        "displayCurrency": "BTC",
        "baseAmount": SALE_SATS - TIP_SATS,
        "tipAmount": TIP_SATS,
        "tipPercent": 15,
        "tipRecipients": [
            {"username": tipee["username"], "share": share}
            for tipee, share in zip(accounts.tipees, TIP_SHARES, strict=True)
        ],
    }
    invoice = _call("POST", setup.service_url, "/api/blink/create-invoice", body)["invoice"]
    say(f"invoice     {invoice['satoshis']} sats, hash {invoice['paymentHash']}")
    for recipient in invoice["tipRecipients"]:
        say(f"  tip leg   {recipient['username']}: {recipient['sats']} sats")

    _call("POST", setup.simulator_url, f"/sim/invoices/{invoice['paymentHash']}/pay", {})
    say("paid        by a customer (simulator)")
    forwarded = _forward(setup, invoice["paymentHash"])
    say(f"forwarded   {forwarded['details']['forwardedAmount']} sats to the merchant, tips split")

    after = {name: _balance(setup, wallet) for name, wallet in wallets.items()}
    say("")
    say(f"{'wallet':<16}{'before':>10}{'after':>10}{'change':>10}")
    for name in wallets:
        say(f"{name:<16}{before[name]:>10}{after[name]:>10}{after[name] - before[name]:>+10}")
    moved = sum(after[name] - before[name] for name in wallets)
    say(f"{'total':<16}{'':>10}{'':>10}{moved:>+10}   (the customer paid {SALE_SATS})")

    expected = {name: 0 for name in wallets}
    expected[merchant["username"]] = SALE_SATS - TIP_SATS
    for recipient in invoice["tipRecipients"]:
        expected[recipient["username"]] = recipient["sats"]
    changes = {name: after[name] - before[name] for name in wallets}
    if changes != expected or moved != SALE_SATS:
        raise DemoFailed(f"balances do not add up: expected changes {expected}, saw {changes}")
    say("")
    say("every sat accounted for: merchant got the base, tips split exactly, POS wallet back to where it was")


def _forward(setup: DemoSetup, payment_hash: str) -> dict[str, Any]:
    # The dev worker may be forwarding the same sale already (409): ask again until it is done.
    deadline = time.monotonic() + 30
    while True:
        response = requests.post(
            f"{setup.service_url}/api/blink/forward-with-tips",
            json={"paymentHash": payment_hash},
            timeout=TIMEOUT,
        )
        if response.status_code == 200:
            return response.json()
        if response.status_code != 409 or time.monotonic() > deadline:
            raise DemoFailed(f"forward failed: HTTP {response.status_code} {response.text[:300]}")
        time.sleep(0.3)


def _balance(setup: DemoSetup, wallet_id: str) -> int:
    return int(_call("GET", setup.simulator_url, f"/sim/wallets/{wallet_id}")["balance"])


def _call(method: str, base_url: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    try:
        response = requests.request(method, f"{base_url}{path}", json=body, timeout=TIMEOUT)
    except requests.RequestException as exc:
        raise DemoFailed(
            f"{base_url} is not answering ({type(exc).__name__}); is `python -m service dev` running?"
        ) from None
    if response.status_code != 200:
        raise DemoFailed(f"{method} {path}: HTTP {response.status_code} {response.text[:300]}")
    return response.json()
