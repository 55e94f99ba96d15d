"""`python -m bench chaos`: a stream of sales while the stack is broken in turn, then the books.

While the tills sell (create, the customer pays, usually forward; some sales are never forwarded
by the till, left to the webhook and the worker), in turn: Valkey is SIGKILLed and restarted,
Postgres is restarted, a gunicorn worker is SIGKILLed, and the simulator makes
lnInvoicePaymentSend time out (the payment goes through, the answer does not) and fail.
Tills retry on connection errors and 5xx as the POS page would.

Then the faults are cleared and the worker gets a bounded time to settle, and the simulator's
ledger and the database are checked: every paid invoice forwarded exactly once, each leg's sats
in the right wallet for the right amount, no split left paid/forwarding, sats conserved. It
prints `sales N, forwarded N, duplicated 0, lost 0, stuck 0` and exits 1 on any other outcome.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.load import OperationFailed, client_session
from bench.sales import SaleTarget, create_invoice, customer_pays, forward
from bench.stack import BenchStack, StackOptions
from bench.store_bench import open_store
from service.domain.model import LegKind, Split, SplitStatus

MERCHANT = "<merchant>"  # not a valid Blink username, so it cannot clash with a tipee
UNSETTLED = (SplitStatus.PAID, SplitStatus.FORWARDING, SplitStatus.PENDING)
LEAVE_TO_WORKER_EVERY = 7  # every 7th sale the till never forwards (the page was closed)
RETRY_BACKOFF_SECONDS = (0.2, 0.5, 1.0, 2.0)
TILL_GIVES_UP_SECONDS = 120.0
FORWARD_ATTEMPTS = 8
CHAOS_ENV = {
    # The simulator's timeout fault holds the answer 4 s: the service gives up after 2 s not
    # knowing the payment went through, which is the case the exactly-once design is for.
    "BLINK_READ_TIMEOUT_SECONDS": "2",
    # A lease held by a SIGKILLed gunicorn worker is taken over after this (production: 300 s).
    "FORWARD_LEASE_SECONDS": "20",
    # Sales nobody forwards are found by webhook, else by the worker polling Blink after 2 s.
    "PENDING_POLL_AFTER_SECONDS": "2",
    "WORKER_POLL_SECONDS": "0.5",
    "LOG_LEVEL": "WARNING",
}


@dataclass(frozen=True)
class ChaosOptions:
    sales: int = 2000
    clients: int = 16
    settle_seconds: float = 240.0


@dataclass
class Books:
    """The outcome of the check; `ok` only when every paid invoice was forwarded exactly once."""

    sales: int = 0
    forwarded: int = 0
    duplicated: int = 0
    lost: int = 0
    stuck: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        clean = self.duplicated == self.lost == self.stuck == 0
        return clean and self.forwarded == self.sales and not self.problems

    def line(self) -> str:
        return (
            f"sales {self.sales}, forwarded {self.forwarded}, duplicated {self.duplicated}, "
            f"lost {self.lost}, stuck {self.stuck}"
        )


@dataclass
class Stream:
    """What the tills did, shared between them and the chaos schedule (one event loop: no locks)."""

    wanted: int
    paid: list[str] = field(default_factory=list)
    forwarded_by_till: int = 0
    left_to_worker: int = 0
    till_retries: Counter[str] = field(default_factory=Counter)
    next_sale: int = 0

    def take_sale_number(self) -> int | None:
        if self.next_sale >= self.wanted:
            return None
        self.next_sale += 1
        return self.next_sale


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


# --- the tills ----------------------------------------------------------------------------------


def _retryable(error: Exception) -> bool:
    if isinstance(error, httpx.TransportError):
        return True
    return isinstance(error, OperationFailed) and " -> 5" in error.label


async def _with_retries(stream: Stream, what: str, call: Callable[[], Awaitable[Any]]) -> Any:
    deadline = time.monotonic() + TILL_GIVES_UP_SECONDS
    attempt = 0
    while True:
        try:
            return await call()
        except (httpx.TransportError, OperationFailed) as error:
            if not _retryable(error) or time.monotonic() > deadline:
                raise
            stream.till_retries[what] += 1
            await asyncio.sleep(RETRY_BACKOFF_SECONDS[min(attempt, len(RETRY_BACKOFF_SECONDS) - 1)])
            attempt += 1


async def _forward_like_the_page(
    stream: Stream, http: httpx.AsyncClient, target: SaleTarget, hash_: str
) -> None:
    """Forward until 200; a 409 forwarding_in_progress or a few failed tries leave it to the worker."""
    for attempt in range(FORWARD_ATTEMPTS):
        try:
            response = await forward(http, target, hash_)
        except httpx.TransportError:
            response = None
        if response is not None and response.status_code == 200:
            stream.forwarded_by_till += 1
            return
        if response is not None and response.status_code == 409:
            return  # someone (webhook + worker) is on it
        if response is not None and response.status_code < 500:
            raise OperationFailed(f"forward answered {response.status_code}: {response.text[:200]}")
        stream.till_retries["forward"] += 1
        await asyncio.sleep(RETRY_BACKOFF_SECONDS[min(attempt, len(RETRY_BACKOFF_SECONDS) - 1)])


async def _till(stream: Stream, http: httpx.AsyncClient, target: SaleTarget) -> None:
    while (number := stream.take_sale_number()) is not None:
        invoice = await _with_retries(stream, "create", lambda: create_invoice(http, target))
        hash_ = invoice["paymentHash"]
        await _with_retries(stream, "pay", lambda hash_=hash_: customer_pays(http, target, hash_))
        stream.paid.append(hash_)
        if number % LEAVE_TO_WORKER_EVERY == 0:
            stream.left_to_worker += 1
            continue
        await _forward_like_the_page(stream, http, target, hash_)


# --- the chaos schedule ---------------------------------------------------------------------------


def _schedule(stack: BenchStack) -> list[tuple[float, str, Callable[[], None]]]:
    """(fraction of the sales paid, description, blocking action), in order."""
    assert stack.sim is not None

    def valkey_crash() -> None:
        stack.kill_valkey()
        time.sleep(3)
        stack.start_valkey()

    def postgres_restart() -> None:
        stack.stop_postgres()
        time.sleep(2)
        stack.start_postgres()

    def kill_worker_process() -> None:
        stack.kill_gunicorn_worker()

    def payment_faults() -> None:
        assert stack.sim is not None
        stack.sim.fault("lnInvoicePaymentSend", "timeout", count=15, delay_ms=4000)
        stack.sim.fault("lnInvoicePaymentSend", "error", count=25)
        stack.sim.fault("lnInvoicePaymentSend", "error", count=10, http_status=503)

    def clear_faults() -> None:
        assert stack.sim is not None
        stack.sim.clear_faults()

    return [
        (0.10, "Valkey SIGKILLed, restarted 3 s later", valkey_crash),
        (0.30, "Postgres stopped (fast), started 2 s later", postgres_restart),
        (0.50, "a gunicorn worker SIGKILLed", kill_worker_process),
        (0.65, "lnInvoicePaymentSend: 15 timeouts, 25 failures, 10 HTTP 503", payment_faults),
        (0.85, "simulator faults cleared", clear_faults),
    ]


async def _run_schedule(stack: BenchStack, stream: Stream, done: asyncio.Event) -> None:
    for fraction, description, action in _schedule(stack):
        while len(stream.paid) < fraction * stream.wanted and not done.is_set():
            await asyncio.sleep(0.1)
        if done.is_set():
            return
        at_sales, began = len(stream.paid), time.monotonic()
        await asyncio.to_thread(action)
        say(f"  chaos at {at_sales} sales: {description} (took {time.monotonic() - began:.1f} s)")


async def _supervise(stack: BenchStack, done: asyncio.Event) -> None:
    """Restarts the worker process if it dies, as its supervisor (compose: restart) would."""
    while not done.is_set():
        if stack.worker is not None and not stack.worker.running():
            say("  the worker process exited; restarting it (as its supervisor would)")
            await asyncio.to_thread(stack.restart_worker)
        await asyncio.sleep(1.0)


async def _stream_sales(stack: BenchStack, options: ChaosOptions) -> Stream:
    assert stack.accounts is not None and stack.simulator is not None
    target = SaleTarget(
        stack.service_url, stack.simulator.base_url, stack.accounts.merchant, stack.accounts.tipees
    )
    stream = Stream(wanted=options.sales)
    done = asyncio.Event()
    https = [client_session(httpx.Timeout(30.0, connect=3.0)) for _ in range(options.clients)]
    chaos = asyncio.create_task(_run_schedule(stack, stream, done))
    supervisor = asyncio.create_task(_supervise(stack, done))
    try:
        await asyncio.gather(*(_till(stream, http, target) for http in https))
    finally:
        done.set()
        await asyncio.gather(chaos, supervisor, return_exceptions=True)
        await asyncio.gather(*(http.aclose() for http in https))
    return stream


# --- settling and the books ---------------------------------------------------------------------


def _settle(stack: BenchStack, payment_hashes: list[str], timeout: float) -> float:
    """Waits until no sale is left unsettled (or the timeout); returns the seconds it took."""
    assert stack.postgres is not None and stack.valkey is not None
    began = time.monotonic()
    with open_store(stack.postgres.url, stack.valkey.url, stack.encryption_key) as store:
        remaining = list(payment_hashes)
        while remaining and time.monotonic() - began < timeout:
            remaining = [h for h in remaining if _unsettled(store.get_fresh(h))]
            if remaining:
                time.sleep(1.0)
    return time.monotonic() - began


def _unsettled(split: Split | None) -> bool:
    return split is None or split.status in UNSETTLED


def check_books(stack: BenchStack) -> Books:
    """The simulator's ledger against the database: every customer payment is one sale."""
    assert stack.sim is not None and stack.accounts is not None and stack.postgres is not None
    assert stack.valkey is not None
    accounts = stack.accounts
    pos_wallet = accounts.pos["btcWalletId"]
    # Where each leg must land: the merchant's wallet for the base, each tipee's for their tip.
    wallet_of = {t["username"]: t["btcWalletId"] for t in accounts.tipees}
    wallet_of[MERCHANT] = accounts.merchant["btcWalletId"]
    ledger = stack.sim.ledger()
    customer_payments = [t for t in ledger if t["fromWalletId"] is None and t["paymentHash"]]
    payouts = Counter(t["paymentHash"] for t in ledger if t["fromWalletId"] == pos_wallet)
    payout_by_hash = {t["paymentHash"]: t for t in ledger if t["fromWalletId"] == pos_wallet}
    books = Books(sales=len(customer_payments))
    explained: set[str] = set()
    with open_store(stack.postgres.url, stack.valkey.url, stack.encryption_key) as store:
        for payment in customer_payments:
            split = store.get_fresh(payment["paymentHash"])
            if split is None or payment["toWalletId"] != pos_wallet or payment["sats"] != split.invoice_sats:
                books.lost += 1
                books.problems.append(f"customer payment {payment['paymentHash'][:12]} matches no split")
                continue
            if split.status in UNSETTLED:
                books.stuck += 1
                continue
            verdict = _check_legs(split, payouts, payout_by_hash, wallet_of, explained)
            if verdict == "forwarded" and split.status is SplitStatus.COMPLETED:
                books.forwarded += 1
            elif verdict == "duplicated":
                books.duplicated += 1
            else:
                books.lost += 1
                books.problems.append(f"split {split.payment_hash[:12]} {split.status}: {verdict}")
    unexplained = [h for h in payouts if h not in explained]
    if unexplained:
        books.duplicated += len(unexplained)
        books.problems.append(f"{len(unexplained)} payouts from the POS wallet belong to no leg")
    _check_conservation(stack, ledger, books)
    return books


def _check_legs(
    split: Split,
    payouts: Counter[str],
    payout_by_hash: dict[str, dict],
    wallet_of: dict[str, str],
    explained: set[str],
) -> str:
    if sum(leg.sats for leg in split.legs) != split.invoice_sats:
        return "legs do not add up to the invoice"
    for leg in split.legs:
        if leg.payment_hash is None or payouts[leg.payment_hash] == 0:
            return f"{leg.kind} leg never paid"
        explained.add(leg.payment_hash)
        if payouts[leg.payment_hash] > 1:
            return "duplicated"
        payout = payout_by_hash[leg.payment_hash]
        expected_wallet = wallet_of.get(MERCHANT if leg.kind is LegKind.BASE else leg.recipient)
        if payout["toWalletId"] != expected_wallet or payout["sats"] != leg.sats:
            return f"{leg.kind} leg paid {payout['sats']} sats to the wrong place"
    return "forwarded"


def _check_conservation(stack: BenchStack, ledger: list[dict], books: Books) -> None:
    """Sum of every balance == outside money in; POS wallet back to 0; each wallet = its legs."""
    assert stack.sim is not None and stack.accounts is not None
    accounts = stack.accounts
    wallets = [accounts.pos, accounts.merchant, *accounts.tipees]
    balances = {w["btcWalletId"]: stack.sim.balance(w["btcWalletId"]) for w in wallets}
    outside = sum(t["sats"] for t in ledger if t["fromWalletId"] is None)
    if sum(balances.values()) != outside:
        books.problems.append(f"sats not conserved: balances {sum(balances.values())} != paid in {outside}")
    credits: Counter[str] = Counter()
    for transfer in ledger:
        credits[transfer["toWalletId"]] += transfer["sats"]
        if transfer["fromWalletId"] is not None:
            credits[transfer["fromWalletId"]] -= transfer["sats"]
    for wallet_id, balance in balances.items():
        if credits[wallet_id] != balance:
            books.problems.append(f"wallet {wallet_id[:8]} balance {balance} != ledger {credits[wallet_id]}")
    if books.stuck == 0 and balances[accounts.pos["btcWalletId"]] != 0:
        books.problems.append(f"{balances[accounts.pos['btcWalletId']]} sats left in the POS wallet")


# --- the run ------------------------------------------------------------------------------------


def run_chaos(options: ChaosOptions, work_dir: Path | None = None) -> int:
    if options.sales < 1 or options.clients < 1:
        raise ValueError("sales and clients must be positive")
    stack_options = StackOptions(with_worker=True, with_webhook=True, service_env=dict(CHAOS_ENV))
    with tempfile.TemporaryDirectory(prefix="blinkpos-chaos-") as scratch:
        with BenchStack(Path(work_dir or scratch), stack_options) as stack:
            for note in stack.notes:
                say(f"note: {note}")
            say(f"streaming {options.sales} sales from {options.clients} tills, breaking things in turn:")
            began = time.monotonic()
            stream = asyncio.run(_stream_sales(stack, options))
            assert stack.sim is not None
            stack.sim.clear_faults()
            say(
                f"  {len(stream.paid)} sales paid in {time.monotonic() - began:.0f} s; "
                f"{stream.forwarded_by_till} forwarded by the tills, {stream.left_to_worker} left to the "
                f"worker; till retries {dict(stream.till_retries)}"
            )
            settled_in = _settle(stack, stream.paid, options.settle_seconds)
            say(f"  settled in {settled_in:.0f} s (bound {options.settle_seconds:.0f} s)")
            books = check_books(stack)
    for problem in books.problems[:20]:
        say(f"problem: {problem}")
    say(books.line())
    return 0 if books.ok and books.sales >= options.sales else 1
