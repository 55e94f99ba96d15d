"""Benchmark of `python -m migrate`: 10,000 generated legacy records into the embedded servers.

Runs the tool in-process (migrate.cli.main, exactly what `python -m migrate` runs) three times
against a fresh embedded PostgreSQL and Valkey: the migration itself, a re-run (every record
already present: a no-op) and a re-run with --verify (every record read back through the store).
Prints one table with records per second. Standalone: `python -m bench.migrate_bench [--records N]`.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from migrate.cli import Streams, main
from migrate.reporting import render_table
from service.devservers import EmbeddedPostgres, EmbeddedValkey
from service.store.migrations import upgrade

TTL_SECONDS = 86_400
EXPIRED_EVERY = 5  # one record in five is older than the TTL (Postgres only, as expired)


@dataclass(frozen=True)
class PhaseResult:
    name: str
    records: int
    seconds: float
    exit_code: int

    @property
    def per_second(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else float("inf")


class _NoTty(io.StringIO):
    def isatty(self) -> bool:
        return False


def legacy_entries(count: int, now: datetime) -> dict[str, dict[str, Any]]:
    """Realistic records: mostly fresh, some expired; one, two or no tip recipients; unicode memos."""
    entries: dict[str, dict[str, Any]] = {}
    for index in range(count):
        expired = index % EXPIRED_EVERY == 0
        age = timedelta(seconds=TTL_SECONDS + 3600 + index) if expired else timedelta(seconds=60 + index)
        base = 500 + (index * 37) % 50_000
        tip = base * 15 // 100 if index % 3 else 0
        entry: dict[str, Any] = {
            "baseAmount": str(base) if index % 2 else base,
            "tipAmount": tip,
            "tipPercent": 15 if tip else 0,
            "userApiKey": f"blink_{hashlib.sha256(str(index % 97).encode()).hexdigest()[:40]}",
            "userWalletId": f"wallet-{index % 97:04d}",
            "displayCurrency": "USD",
            "baseAmountDisplay": f"{base / 1500:.2f}",
            "tipAmountDisplay": f"{tip / 1500:.2f}",
            "memo": f"Sale {index} – Café ☕",
            "timestamp": int((now - age).timestamp() * 1000),
        }
        if tip and index % 2:
            entry["tipRecipients"] = [
                {"username": "bench_alice", "share": 2},
                {"username": "bench_bob", "share": 1},
            ]
        elif tip:
            entry["tipRecipient"] = "bench_carol"
        entries[hashlib.sha256(f"bench-sale-{index}".encode()).hexdigest()] = entry
    return entries


def run_phase(name: str, argv: list[str], env: dict[str, str], records: int) -> PhaseResult:
    out, err = io.StringIO(), io.StringIO()
    started = time.perf_counter()
    code = main(argv, environ=env, streams=Streams(_NoTty(), out, err))
    seconds = time.perf_counter() - started
    if code != 0:
        sys.stderr.write(f"{name} exited {code}:\n{err.getvalue()}{out.getvalue()}\n")
    return PhaseResult(name, records, seconds, code)


def render(results: Sequence[PhaseResult]) -> str:
    rows = [
        (r.name, f"{r.records:,}", f"{r.seconds:.2f}", f"{r.per_second:,.0f}", str(r.exit_code))
        for r in results
    ]
    return render_table(rows, ("phase", "records", "seconds", "records/s", "exit"))


def run(records: int, work_dir: Path) -> list[PhaseResult]:
    postgres = EmbeddedPostgres(work_dir / "postgres", delete_on_close=True)
    valkey = EmbeddedValkey(work_dir / "valkey")
    try:
        valkey.start()
        upgrade(postgres.url)
        source = work_dir / ".tip-store.json"
        source.write_text(json.dumps(legacy_entries(records, datetime.now(UTC)), ensure_ascii=False), "utf-8")
        env = {
            **os.environ,
            "DATABASE_URL": postgres.url,
            "REDIS_URL": valkey.url,
            "BLINKPOS_API_KEY": "bench-pos-key",
            "BLINKPOS_BTC_WALLET_ID": "bench-pos-wallet",
            "API_KEY_ENCRYPTION_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
            "TIP_TTL_SECONDS": str(TTL_SECONDS),
        }
        common = ["--file", str(source), "--yes"]
        return [
            run_phase("migrate", [*common, "--backup", str(work_dir / "backups")], env, records),
            run_phase("re-run (no-op)", common, env, records),
            run_phase("re-run --verify", [*common, "--verify"], env, records),
        ]
    finally:
        valkey.close()
        postgres.close()


def cli(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.migrate_bench", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--records", type=int, default=10_000, help="legacy records to generate (%(default)s)"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="migrate-bench-") as tmp:
        results = run(args.records, Path(tmp))
    print(f"migrate benchmark: {args.records:,} legacy records (1 in {EXPIRED_EVERY} expired)")
    print(render(results))
    return 0 if all(r.exit_code == 0 for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(cli())
