"""What one sale costs, measured from outside the processes (issue 16's figures).

- Blink round trips a forward-with-tips of a 5-leg sale waits for, with every Blink call slowed
  by the simulator's "delay" fault: the forward's wall time over the delay, and the Blink calls
  the service counted for it (its blinkpos_blink_requests_total).
- Postgres commits per whole 3-leg sale: pg_stat_database's xact_commit (every commit, read-only
  ones too) and the writing transactions (transaction ids taken: each one a durable fsync).
- App CPU per create-invoice and per whole sale: psutil's user+system time of the gunicorn master
  and its workers and of the worker process, over many operations, divided by their number.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import httpx
import psutil
import psycopg
import requests

from bench.load import LoadResult, Operation, expect_status, run_closed_loop
from bench.sales import SaleTarget, create_invoice, customer_pays, forward, payment_status, whole_sale
from bench.stack import BenchStack

ROUND_TRIP_DELAY_MS = 200
FIVE_LEG_TIPEES = ("bench_carol", "bench_dave")  # beside the stack's two: a base and four tips
# An idle backend publishes its counters to pg_stat_database at most every 10 s (PostgreSQL's
# PGSTAT_IDLE_INTERVAL): waiting a little longer lets every commit of a run show up.
STATS_FLUSH_SECONDS = 11.0
_BLINK_CALLS = "blinkpos_blink_requests_total"
QUIET_SAMPLE_SECONDS = 0.5
QUIET_CPU_SECONDS = 0.01  # gunicorn CPU per sample below which its processes count as idle


@dataclass(frozen=True)
class CostOptions:
    cpu_operations: int = 400
    commit_sales: int = 200
    clients: int = 4
    forwards: int = 5  # 5-leg forwards timed under the delay
    stats_flush_seconds: float = STATS_FLUSH_SECONDS


@dataclass(frozen=True)
class ForwardRoundTrips:
    seconds: list[float]
    blink_calls: list[int]

    @property
    def median_seconds(self) -> float:
        return statistics.median(self.seconds)

    @property
    def round_trips(self) -> float:
        return self.median_seconds * 1000 / ROUND_TRIP_DELAY_MS


@dataclass(frozen=True)
class Cpu:
    """CPU milliseconds per operation: the gunicorn processes, the worker process."""

    app_ms: float
    worker_ms: float
    failed: int = 0  # operations that failed (their CPU is in the figures, they are not counted)

    @property
    def total_ms(self) -> float:
        return self.app_ms + self.worker_ms


@dataclass(frozen=True)
class Commits:
    per_sale: float  # pg_stat_database xact_commit, the worker's idle polling taken out
    writing_per_sale: float
    failed: int = 0


# --- CPU ----------------------------------------------------------------------------------------


def _cpu_seconds(pids: list[int], *, reaped_children: bool = False) -> float:
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
        if reaped_children:
            total += times.children_user + times.children_system
    return total


def _process_cpu(stack: BenchStack) -> tuple[float, float]:
    """CPU seconds so far of the gunicorn processes and of the worker process. gunicorn recycles
    a worker after GUNICORN_MAX_REQUESTS: the master's reaped-children times keep what the
    workers that exited spent."""
    assert stack.gunicorn is not None and stack.worker is not None
    master = _cpu_seconds([stack.gunicorn.pid], reaped_children=True)
    return master + _cpu_seconds(stack.gunicorn_worker_pids()), _cpu_seconds([stack.worker.pid])


def _run(operation: Operation, count: int, clients: int) -> LoadResult:
    return asyncio.run(run_closed_loop("cost", operation, clients=clients, total_operations=count))


def _wait_quiet(stack: BenchStack, timeout: float = 15.0) -> None:
    """Until the gunicorn processes idle: a worker still booting (the stack is ready when one
    of them answers) spends most of a second of CPU that no operation should be charged."""
    deadline = time.monotonic() + timeout
    previous = _process_cpu(stack)[0]
    while time.monotonic() < deadline:
        time.sleep(QUIET_SAMPLE_SECONDS)
        current = _process_cpu(stack)[0]
        if current - previous <= QUIET_CPU_SECONDS:
            return
        previous = current


def cpu_per_operation(stack: BenchStack, operation: Operation, options: CostOptions) -> Cpu:
    _run(operation, options.clients * 5, options.clients)  # warm: pools, imports, caches
    _wait_quiet(stack)
    app_before, worker_before = _process_cpu(stack)
    result = _run(operation, options.cpu_operations, options.clients)
    app_after, worker_after = _process_cpu(stack)
    done = max(result.succeeded, 1)
    return Cpu((app_after - app_before) * 1000 / done, (worker_after - worker_before) * 1000 / done,
               result.failed)


# --- Postgres commits ---------------------------------------------------------------------------


def _commit_counters(database_url: str) -> tuple[int, int]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        commits = conn.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()[0]
        next_xid = conn.execute("SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint").fetchone()[0]
    return int(commits), int(next_xid)


def commits_per_sale(stack: BenchStack, sale: Operation, options: CostOptions) -> Commits:
    """Commits over many sales, less what the idle service commits meanwhile (the worker's polls
    and this measurement's own reads), measured in a quiet window of the same kind."""
    assert stack.postgres is not None
    url = stack.postgres.url
    time.sleep(options.stats_flush_seconds)
    commits_0, xid_0 = _commit_counters(url)
    started = time.monotonic()
    result = _run(sale, options.commit_sales, options.clients)
    time.sleep(options.stats_flush_seconds)
    busy_seconds = time.monotonic() - started
    commits_1, xid_1 = _commit_counters(url)
    time.sleep(options.stats_flush_seconds)
    commits_2, xid_2 = _commit_counters(url)
    idle_seconds = options.stats_flush_seconds
    idle_commits = (commits_2 - commits_1) / idle_seconds * busy_seconds
    idle_xids = (xid_2 - xid_1) / idle_seconds * busy_seconds
    sales = max(result.succeeded, 1)
    return Commits((commits_1 - commits_0 - idle_commits) / sales, (xid_1 - xid_0 - idle_xids) / sales,
                   result.failed)


# --- Blink round trips --------------------------------------------------------------------------


def _blink_calls(service_url: str) -> int:
    """Blink calls the service has made (every process: the metrics are multiprocess)."""
    text = requests.get(f"{service_url}/metrics", timeout=10).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(_BLINK_CALLS + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


def _quiet_blink_calls(service_url: str, timeout: float = 30.0) -> int:
    """The Blink call count once nothing else calls Blink (the worker may be finishing sales an
    earlier row left behind), so a forward's calls are its own."""
    deadline = time.monotonic() + timeout
    previous = _blink_calls(service_url)
    while time.monotonic() < deadline:
        time.sleep(QUIET_SAMPLE_SECONDS)
        current = _blink_calls(service_url)
        if current == previous:
            return current
        previous = current
    return previous


def five_leg_target(stack: BenchStack, base: SaleTarget) -> SaleTarget:
    assert stack.sim is not None
    extra = tuple(stack.sim.create_account(username) for username in FIVE_LEG_TIPEES)
    return SaleTarget(base.service_url, base.simulator_url, base.merchant, base.tipees + extra)


def forward_round_trips(stack: BenchStack, target: SaleTarget, options: CostOptions) -> ForwardRoundTrips:
    """Each sale is created and paid at full speed; only its forward runs under the delay."""
    assert stack.sim is not None
    sim = stack.sim

    async def one() -> tuple[float, int]:
        async with httpx.AsyncClient(timeout=30) as http:
            invoice = await create_invoice(http, target)
            await customer_pays(http, target, invoice["paymentHash"])
            calls_before = _quiet_blink_calls(target.service_url)
            sim.fault("*", "delay", delay_ms=ROUND_TRIP_DELAY_MS)
            try:
                began = time.perf_counter()
                response = await forward(http, target, invoice["paymentHash"])
                seconds = time.perf_counter() - began
            finally:
                sim.clear_faults()
            expect_status(response, 200)
            status = await payment_status(http, target, invoice["paymentHash"])
            if status["status"] != "completed" or len(status["legs"]) != len(target.tipees) + 1:
                raise RuntimeError("the forward did not pay every leg")
            return seconds, _blink_calls(target.service_url) - calls_before

    timings = [asyncio.run(one()) for _ in range(options.forwards)]
    return ForwardRoundTrips([seconds for seconds, _ in timings], [calls for _, calls in timings])


def sale_operations(target: SaleTarget) -> tuple[Operation, Operation]:
    async def create(http: httpx.AsyncClient, _index: int) -> None:
        await create_invoice(http, target)

    async def sale(http: httpx.AsyncClient, _index: int) -> None:
        await whole_sale(http, target)

    return create, sale


@dataclass(frozen=True)
class Costs:
    create_cpu: Cpu
    sale_cpu: Cpu
    commits: Commits
    round_trips: ForwardRoundTrips

    def summary(self) -> dict[str, object]:
        return {**asdict(self), "round_trips_per_forward": self.round_trips.round_trips}


def measure(stack: BenchStack, target: SaleTarget, options: CostOptions,
            say: Callable[[str], None] = lambda _line: None) -> Costs:
    """Every figure of this module, each measured on its own."""
    create, sale = sale_operations(target)
    say("cpu per create-invoice")
    create_cpu = cpu_per_operation(stack, create, options)
    say("cpu per whole sale")
    sale_cpu = cpu_per_operation(stack, sale, options)
    say("commits per whole sale")
    commits = commits_per_sale(stack, sale, options)
    say("round trips per 5-leg forward")
    trips = forward_round_trips(stack, five_leg_target(stack, target), options)
    return Costs(create_cpu, sale_cpu, commits, trips)
