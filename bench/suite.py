"""`python -m bench`: limits, store, endpoints, ratios, costs per sale, memory and the 100 ms Blink
latency run."""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench import costs, limits, store_bench
from bench.load import LoadResult, Operation, expect_status, run_closed_loop
from bench.report import Report, fmt, verdict
from bench.sales import SaleTarget, create_invoice, whole_sale
from bench.stack import BenchStack, StackOptions

MB = 1024 * 1024
# The targets on this 2-core machine, and the original Node store's figures (ms).
CREATE_INVOICE_TARGET_RPS = 400
CREATE_INVOICE_TARGET_P99_MS = 50
WHOLE_SALE_TARGET_PER_SECOND = 100
LATENCY_RUN_TARGET_PER_SECOND = 40
WORKER_RSS_TARGET_MB = 100
STORE_TARGETS = {  # operation: (target p50, target p99, Node p50, Node p99)
    "save": (0.8, 2.0, "0.79", "3.4"),
    "read_redis_hit": (None, None, "0.04", ""),
    "read_redis_miss": (0.35, None, "0.34", ""),
    "read_postgres_only": (None, None, "", ""),
    "complete": (0.9, None, "0.86", ""),
}
STORE_LABELS = {
    "save": "save (Postgres tx + hot copy)",
    "read_redis_hit": "read, Redis hit",
    "read_redis_miss": "read, Redis miss -> Postgres (+ re-warm)",
    "read_postgres_only": "read, Postgres only (get_fresh)",
    "complete": "completion",
}
CLIENT_COUNTS = (1, 16, 64)
SCRATCH_DATABASE = "bench_scratch"
SCRATCH_REDIS_DB = 1
LATENCY_RUN_CLIENTS = 128
BLINK_LATENCY_MS = 100
# Issue 16's goals per sale.
ROUND_TRIPS_TARGET = 4.5
COMMITS_TARGET = 6
SALE_CPU_TARGET_MS = 15
CREATE_CPU_TARGET_MS = 3


@dataclass(frozen=True)
class Scratch:
    """Where pgbench and the store benchmark write: not the service's database or Redis db."""

    database_url: str
    redis_url: str
    encryption_key: str


@dataclass(frozen=True)
class SuiteOptions:
    seconds_per_row: float = 15.0
    warmup_seconds: float = 2.0
    pgbench_seconds: float = 10.0
    store_iterations: int = 1000
    open_splits_for_memory: int = 2000
    client_counts: tuple[int, ...] = CLIENT_COUNTS
    costs: costs.CostOptions = costs.CostOptions()

    @classmethod
    def quick(cls) -> SuiteOptions:
        return cls(seconds_per_row=2.0, warmup_seconds=0.5, pgbench_seconds=2.0, store_iterations=100,
                   open_splits_for_memory=200,
                   costs=costs.CostOptions(cpu_operations=40, commit_sales=20, forwards=2))


def run_suite(options: SuiteOptions, work_dir: Path | None = None) -> Report:
    report = Report(title="BlinkPOS benchmark")
    with tempfile.TemporaryDirectory(prefix="blinkpos-bench-") as scratch:
        with BenchStack(Path(work_dir or scratch), StackOptions()) as stack:
            report.notes += stack.notes
            report.raw["gunicorn_workers"] = len(stack.gunicorn_worker_pids())
            assert stack.postgres is not None and stack.valkey is not None
            scratch = Scratch(
                limits.create_scratch_database(stack.postgres.url, SCRATCH_DATABASE),
                stack.valkey.url.rsplit("/", 1)[0] + f"/{SCRATCH_REDIS_DB}",
                stack.encryption_key,
            )
            pg_limit = _limits(stack, scratch, options, report)
            _endpoints(stack, options, report, pg_limit)
            _costs(stack, options, report)
            _blink_latency(stack, options, report)
            _worker_memory(stack, report)
            _store(scratch, options, report)
            _redis_memory(scratch, options, report)
    return report


def _target(stack: BenchStack) -> SaleTarget:
    assert stack.accounts is not None and stack.simulator is not None
    accounts = stack.accounts
    return SaleTarget(stack.service_url, stack.simulator.base_url, accounts.merchant, accounts.tipees)


# --- limits -----------------------------------------------------------------------------------


def _limits(stack: BenchStack, scratch: Scratch, options: SuiteOptions, report: Report) -> float:
    assert stack.valkey is not None and stack.sim is not None and stack.accounts is not None
    section = "limit"
    runs = {}
    for clients in (1, 16):
        result = limits.run_pgbench(
            scratch.database_url, scratch.encryption_key, clients, options.pgbench_seconds
        )
        runs[clients] = result
        report.add(section, f"Postgres: service's insert_split, durable, pgbench {clients} client(s)",
                   f"{fmt(result.tps, 0)} tx/s, avg {fmt(result.latency_avg_ms, 3)} ms")
    report.raw["pgbench"] = {str(c): r.summary() for c, r in runs.items()}
    rtt = limits.redis_round_trip_ms(stack.valkey.url, 2000)
    report.add(section, "Redis: one round trip (PING)",
               f"p50 {fmt(rtt['p50_ms'], 3)} ms, p99 {fmt(rtt['p99_ms'], 3)} ms")
    pos = stack.accounts.pos
    sim = limits.simulator_invoice_create_ms(stack.sim, pos["apiKey"], pos["btcWalletId"], 300)
    report.add(section, "Simulator: one lnInvoiceCreate alone",
               f"p50 {fmt(sim['p50_ms'], 2)} ms, p99 {fmt(sim['p99_ms'], 2)} ms")
    report.raw["redis_rtt"], report.raw["simulator_invoice_create"] = rtt, sim
    return runs[16].tps


# --- store ------------------------------------------------------------------------------------


def _store(scratch: Scratch, options: SuiteOptions, report: Report) -> None:
    with store_bench.open_store(scratch.database_url, scratch.redis_url, scratch.encryption_key) as store:
        timings = store_bench.run_store_bench(store, options.store_iterations)
    report.raw["store"] = timings.summary()
    for operation in store_bench.OPERATIONS:
        target_p50, target_p99, node_p50, node_p99 = STORE_TARGETS[operation]
        p50, p99 = timings.ms(operation, 0.5), timings.ms(operation, 0.99)
        targets = [f"p50 <= {target_p50}" if target_p50 else "", f"p99 <= {target_p99}" if target_p99 else ""]
        node_figures = (f"p50 {node_p50}" if node_p50 else "", f"p99 {node_p99}" if node_p99 else "")
        node = " / ".join(figure for figure in node_figures if figure)
        ok = ""
        if target_p50 or target_p99:
            ok = "ok"
            if target_p50 and verdict(p50, at_most=target_p50) != "ok":
                ok = "MISSED"
            if target_p99 and verdict(p99, at_most=target_p99) != "ok":
                ok = "MISSED"
        report.add("store", STORE_LABELS[operation], f"p50 {fmt(p50, 3)} ms, p99 {fmt(p99, 3)} ms",
                   ", ".join(t for t in targets if t) + (" ms" if ok else ""), node, ok)


# --- endpoints --------------------------------------------------------------------------------


def _endpoint_operations(target: SaleTarget) -> dict[str, Operation]:
    async def create(http: httpx.AsyncClient, _index: int) -> None:
        await create_invoice(http, target)

    async def sale(http: httpx.AsyncClient, _index: int) -> None:
        await whole_sale(http, target)

    async def health(http: httpx.AsyncClient, _index: int) -> None:
        expect_status(await http.get(f"{target.service_url}/api/health"), 200)

    return {"create-invoice": create, "whole sale": sale, "/api/health": health}


def _load(name: str, operation: Operation, clients: int, options: SuiteOptions) -> LoadResult:
    return asyncio.run(run_closed_loop(
        name, operation, clients=clients, duration_seconds=options.seconds_per_row,
        warmup_seconds=options.warmup_seconds,
    ))


def _endpoints(stack: BenchStack, options: SuiteOptions, report: Report, pg_limit_tps: float) -> None:
    results: dict[str, Any] = {}
    for name, operation in _endpoint_operations(_target(stack)).items():
        for clients in options.client_counts:
            result = _load(name, operation, clients, options)
            results[f"{name}@{clients}"] = result.summary()
            measured = (
                f"{fmt(result.throughput, 1)}/s; p50 {fmt(result.latency_ms(0.5), 1)}, "
                f"p95 {fmt(result.latency_ms(0.95), 1)}, p99 {fmt(result.latency_ms(0.99), 1)} ms"
            )
            if result.failed:
                measured += f"; {result.failed} failed {dict(result.failures)}"
            target, ok = _endpoint_target(name, clients, result)
            report.add("endpoint", f"{name}, {clients} client(s)", measured, target, "", ok)
            ratio = result.throughput / pg_limit_tps if pg_limit_tps else float("nan")
            report.add("ratio", f"{name}, {clients} client(s) / Postgres limit (16 clients)", fmt(ratio, 3))
    report.raw["endpoints"] = results


def _endpoint_target(name: str, clients: int, result: LoadResult) -> tuple[str, str]:
    if name == "create-invoice" and clients == 16:
        ok_rate = verdict(result.throughput, at_least=CREATE_INVOICE_TARGET_RPS)
        ok_p99 = verdict(result.latency_ms(0.99), at_most=CREATE_INVOICE_TARGET_P99_MS)
        ok = "ok" if ok_rate == ok_p99 == "ok" and not result.failed else "MISSED"
        return f">= {CREATE_INVOICE_TARGET_RPS}/s, p99 <= {CREATE_INVOICE_TARGET_P99_MS} ms", ok
    if name == "whole sale" and clients > 1:
        ok = verdict(result.throughput, at_least=WHOLE_SALE_TARGET_PER_SECOND)
        return f">= {WHOLE_SALE_TARGET_PER_SECOND}/s", "MISSED" if result.failed else ok
    return "", ""


# --- costs per sale ---------------------------------------------------------------------------


def _costs(stack: BenchStack, options: SuiteOptions, report: Report) -> None:
    figures = costs.measure(stack, _target(stack), options.costs)
    trips, commits = figures.round_trips, figures.commits
    create_cpu, sale_cpu = figures.create_cpu, figures.sale_cpu
    report.raw["costs"] = figures.summary()
    calls = "/".join(str(count) for count in sorted(set(trips.blink_calls)))
    report.add("cost", f"forward-with-tips of a 5-leg sale, every Blink call +{costs.ROUND_TRIP_DELAY_MS} ms",
               f"{fmt(trips.round_trips, 2)} round trips ({fmt(trips.median_seconds * 1000, 0)} ms); "
               f"{calls} Blink calls", f"<= {ROUND_TRIPS_TARGET}", "",
               verdict(trips.round_trips, at_most=ROUND_TRIPS_TARGET))
    failed = create_cpu.failed + sale_cpu.failed + commits.failed
    if failed:
        report.notes.append(f"cost rows: {failed} operation(s) failed and were left out of the counts")
    report.add("cost", "Postgres commits per whole 3-leg sale (pg_stat_database xact_commit)",
               f"{fmt(commits.per_sale, 1)}; {fmt(commits.writing_per_sale, 1)} writing (fsync)",
               f"<= {COMMITS_TARGET}", "", verdict(commits.per_sale, at_most=COMMITS_TARGET))
    report.add("cost", "app CPU per whole 3-leg sale (gunicorn + worker processes)",
               f"{fmt(sale_cpu.total_ms, 1)} ms (gunicorn {fmt(sale_cpu.app_ms, 1)}, worker "
               f"{fmt(sale_cpu.worker_ms, 1)})", f"<= {SALE_CPU_TARGET_MS} ms", "",
               verdict(sale_cpu.total_ms, at_most=SALE_CPU_TARGET_MS))
    report.add("cost", "app CPU per create-invoice (gunicorn + worker processes)",
               f"{fmt(create_cpu.total_ms, 1)} ms (gunicorn {fmt(create_cpu.app_ms, 1)}, worker "
               f"{fmt(create_cpu.worker_ms, 1)})", f"<= {CREATE_CPU_TARGET_MS} ms", "",
               verdict(create_cpu.total_ms, at_most=CREATE_CPU_TARGET_MS))


# --- memory -----------------------------------------------------------------------------------


def _worker_memory(stack: BenchStack, report: Report) -> None:
    rss = stack.gunicorn_worker_rss()
    largest = max(rss.values(), default=0) / MB
    report.add("memory", f"RSS per gunicorn worker after the run ({len(rss)} workers)",
               ", ".join(fmt(size / MB, 1) for size in sorted(rss.values())) + " MB",
               f"<= {WORKER_RSS_TARGET_MB} MB", "", verdict(largest, at_most=WORKER_RSS_TARGET_MB))
    report.raw["worker_rss_bytes"] = rss


def _redis_memory(scratch: Scratch, options: SuiteOptions, report: Report) -> None:
    with store_bench.open_store(scratch.database_url, scratch.redis_url, scratch.encryption_key) as store:
        per_split = store_bench.redis_bytes_per_open_split(store, options.open_splits_for_memory)
    report.add("memory", f"Redis used_memory per open split (over {options.open_splits_for_memory})",
               f"{fmt(per_split, 0)} bytes")
    report.raw["redis_bytes_per_open_split"] = per_split


# --- real-world latency -----------------------------------------------------------------------


def _blink_latency(stack: BenchStack, options: SuiteOptions, report: Report) -> None:
    assert stack.sim is not None
    operation = _endpoint_operations(_target(stack))["whole sale"]
    stack.sim.fault("*", "delay", delay_ms=BLINK_LATENCY_MS)
    try:
        result = _load("whole sale, Blink +100 ms", operation, LATENCY_RUN_CLIENTS, options)
    finally:
        stack.sim.clear_faults()
    report.raw["blink_latency_run"] = result.summary()
    measured = (
        f"{fmt(result.throughput, 1)} sales/s; p50 {fmt(result.latency_ms(0.5), 0)}, "
        f"p99 {fmt(result.latency_ms(0.99), 0)} ms"
    )
    if result.failed:
        measured += f"; {result.failed} failed {dict(result.failures)}"
    ok = verdict(result.throughput, at_least=LATENCY_RUN_TARGET_PER_SECOND)
    label = f"whole sale, every Blink call +{BLINK_LATENCY_MS} ms, {LATENCY_RUN_CLIENTS} clients"
    target = f">= {LATENCY_RUN_TARGET_PER_SECOND}/s"
    report.add("latency", label, measured, target, "", "MISSED" if result.failed else ok)
