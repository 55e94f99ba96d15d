"""`python -m bench chaos`: a stream of sales while the stack is broken in turn, then the books.

While the tills sell (create, the customer pays, usually forward; some sales are never forwarded
by the till, left to the webhook and the worker; one sale in three tips four recipients, five
legs paid side by side; one in five tips a Blink user and two Lightning Addresses, foreign
wallets on the simulator, one of which turns hostile at its callback for a while), in turn:
Valkey is SIGKILLed; Postgres is SIGKILLed (crash recovery) and later stopped; a gunicorn worker
is SIGKILLed; the worker process is SIGKILLed while its leg payouts are in flight (stored
invoices, payments held by a delay fault); the app's and the worker's connections to Postgres
and to Blink, which run through proxies the run controls (bench/proxy.py), are cut mid-request
and stalled; the simulator makes lnInvoicePaymentSend time out (the payment goes through, the
answer does not), fail, answer 503, and hold payments PENDING that later fail (refunded) or
succeed. Tills retry on connection errors and 5xx as the POS page would.

Then the faults are cleared, the worker gets a bounded time to settle, and the books are checked
(bench/chaos_books.py). It prints every fault injected, then `sales N, forwarded N, duplicated 0,
lost 0, stuck 0; fees ..., refunded payouts ...` and exits 1 on any other outcome.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.chaos_books import check_books, settle
from bench.chaos_faults import schedule
from bench.chaos_stack import ChaosStack
from bench.load import OperationFailed, client_session
from bench.sales import SaleTarget, create_invoice, customer_pays, forward
from bench.stack import StackOptions
from service.cli import say

LEAVE_TO_WORKER_EVERY = 7  # every 7th sale the till never forwards (the page was closed)
FIVE_LEGS_EVERY = 3  # every 3rd sale tips four recipients: five legs paid side by side
LIGHTNING_EVERY = 5  # every 5th sale (with Lightning Address legs on) tips two of them and a Blink user
RETRY_BACKOFF_SECONDS = (0.2, 0.5, 1.0, 2.0)
TILL_GIVES_UP_SECONDS = 120.0
FORWARD_ATTEMPTS = 8
CHAOS_ENV = {
    # The simulator's timeout fault holds the answer 4 s, and a stalled proxy holds it longer:
    # the service gives up after 2 s not knowing whether the payment went through, which is the
    # case the exactly-once design is for.
    "BLINK_READ_TIMEOUT_SECONDS": "2",
    # A cut-off Postgres is noticed in 2 s, not the default 5.
    "PG_CONNECT_TIMEOUT_SECONDS": "2",
    # A lease held by a SIGKILLed process is taken over after this (production: 300 s).
    "FORWARD_LEASE_SECONDS": "20",
    # Sales nobody forwards are found by webhook, else by the worker polling Blink after 2 s.
    "PENDING_POLL_AFTER_SECONDS": "2",
    "WORKER_POLL_SECONDS": "0.5",
    "LOG_LEVEL": "WARNING",
}


@dataclass(frozen=True)
class ChaosOptions:
    sales: int = 1000
    clients: int = 16
    settle_seconds: float = 240.0
    lightning_addresses: bool = True  # sales with legs to the simulator's LNURL wallets


@dataclass
class Stream:
    """What the tills did, shared between them and the chaos schedule (one event loop: no locks)."""

    wanted: int
    paid: list[str] = field(default_factory=list)
    forwarded_by_till: int = 0
    left_to_worker: int = 0
    sale_kinds: Counter[str] = field(default_factory=Counter)
    till_retries: Counter[str] = field(default_factory=Counter)
    next_sale: int = 0
    injected: list[str] = field(default_factory=list)

    def take_sale_number(self) -> int | None:
        if self.next_sale >= self.wanted:
            return None
        self.next_sale += 1
        return self.next_sale


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


async def _till(stream: Stream, http: httpx.AsyncClient, targets: Targets) -> None:
    while (number := stream.take_sale_number()) is not None:
        target, kind = targets.for_sale(number)
        stream.sale_kinds[kind] += 1
        invoice = await _with_retries(stream, "create", lambda t=target: create_invoice(http, t))
        hash_ = invoice["paymentHash"]
        await _with_retries(stream, "pay", lambda t=target, h=hash_: customer_pays(http, t, h))
        stream.paid.append(hash_)
        if number % LEAVE_TO_WORKER_EVERY == 0:
            stream.left_to_worker += 1
            continue
        await _forward_like_the_page(stream, http, target, hash_)


# --- the chaos schedule ---------------------------------------------------------------------------


async def _run_schedule(stack: ChaosStack, stream: Stream, done: asyncio.Event) -> None:
    for fraction, description, action in schedule(stack):
        while len(stream.paid) < fraction * stream.wanted and not done.is_set():
            await asyncio.sleep(0.1)
        if done.is_set():
            say(f"  chaos: not reached before the sales ended: {description}")
            return
        at_sales, began = len(stream.paid), time.monotonic()
        try:
            detail = await asyncio.to_thread(action)
        except Exception as error:  # noqa: BLE001 - a fault that could not be injected is reported, not fatal
            detail = f"NOT injected: {type(error).__name__}: {error}"
        line = f"{description}: {detail}" if detail else description
        stream.injected.append(line)
        say(f"  chaos at {at_sales} sales: {line} (took {time.monotonic() - began:.1f} s)")


async def _supervise(stack: ChaosStack, done: asyncio.Event) -> None:
    """Restarts the worker process if it dies, as its supervisor (compose: restart) would."""
    while not done.is_set():
        if stack.worker is not None and not stack.worker.running():
            say("  the worker process exited; restarting it (as its supervisor would)")
            await asyncio.to_thread(stack.restart_worker)
        await asyncio.sleep(1.0)


@dataclass(frozen=True)
class Targets:
    """The kinds of sale the tills make."""

    two_legs: SaleTarget  # the base and the stack's two tip recipients
    five_legs: SaleTarget  # the base and four tip recipients, paid side by side
    lightning: SaleTarget | None  # the base, a Blink user and two Lightning Addresses (None: off)

    def for_sale(self, number: int) -> tuple[SaleTarget, str]:
        if self.lightning is not None and number % LIGHTNING_EVERY == 0:
            return self.lightning, "lightning address"
        if number % FIVE_LEGS_EVERY == 0:
            return self.five_legs, "five legs"
        return self.two_legs, "two tips"


def _targets(stack: ChaosStack) -> Targets:
    assert stack.accounts is not None and stack.simulator is not None
    accounts = stack.accounts

    def target(tipees) -> SaleTarget:
        return SaleTarget(stack.service_url, stack.simulator.base_url, accounts.merchant, tuple(tipees))

    lightning = None
    if stack.lightning_tipees:
        lightning = target([accounts.tipees[0], *stack.lightning_tipees])
    return Targets(
        target(accounts.tipees), target([*accounts.tipees, *stack.more_tipees]), lightning
    )


async def _stream_sales(stack: ChaosStack, options: ChaosOptions) -> Stream:
    targets = _targets(stack)
    stream = Stream(wanted=options.sales)
    done = asyncio.Event()
    https = [client_session(httpx.Timeout(30.0, connect=3.0)) for _ in range(options.clients)]
    chaos = asyncio.create_task(_run_schedule(stack, stream, done))
    supervisor = asyncio.create_task(_supervise(stack, done))
    try:
        await asyncio.gather(*(_till(stream, http, targets) for http in https))
    finally:
        done.set()
        await asyncio.gather(chaos, supervisor, return_exceptions=True)
        await asyncio.gather(*(http.aclose() for http in https))
    return stream


# --- the run ------------------------------------------------------------------------------------


def _proxy_line(stack: ChaosStack) -> str:
    parts = []
    for proxy in (stack.postgres_proxy, stack.blink_proxy):
        c = proxy.counters
        parts.append(
            f"{proxy.name}: {c.connections} connections, {c.dropped} cut mid-flight, "
            f"{c.reset_on_accept} reset on accept, {c.stalls} stalls"
        )
    return "; ".join(parts)


def run_chaos(options: ChaosOptions, work_dir: Path | None = None) -> int:
    if options.sales < 1 or options.clients < 1:
        raise ValueError("sales and clients must be positive")
    stack_options = StackOptions(with_worker=True, with_webhook=True, service_env=dict(CHAOS_ENV))
    with tempfile.TemporaryDirectory(prefix="blinkpos-chaos-") as scratch:
        with ChaosStack(Path(work_dir or scratch), stack_options) as stack:
            for note in stack.notes:
                say(f"note: {note}")
            if options.lightning_addresses:
                stack.open_lightning_wallets()
            say(f"streaming {options.sales} sales from {options.clients} tills, breaking things in turn:")
            began = time.monotonic()
            stream = asyncio.run(_stream_sales(stack, options))
            assert stack.sim is not None and stack.accounts is not None
            stack.sim.clear_faults()
            say(
                f"  {len(stream.paid)} sales paid in {time.monotonic() - began:.0f} s "
                f"({dict(stream.sale_kinds)}); {stream.forwarded_by_till} forwarded by the "
                f"tills, {stream.left_to_worker} left to the worker; till retries {dict(stream.till_retries)}"
            )
            settled_in = settle(stack, stream.paid, options.settle_seconds)
            say(f"  settled in {settled_in:.0f} s (bound {options.settle_seconds:.0f} s)")
            say(f"  proxies: {_proxy_line(stack)}")
            books = check_books(
                stack, [*stack.accounts.tipees, *stack.more_tipees], list(stack.lightning_tipees)
            )
    say(f"faults injected ({len(stream.injected)}):")
    for line in stream.injected:
        say(f"  - {line}")
    for problem in books.problems[:20]:
        say(f"problem: {problem}")
    say(books.line())
    return 0 if books.ok and books.sales >= options.sales else 1
