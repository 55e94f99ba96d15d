"""In-process timings of the hybrid store (SplitStore) against the real Postgres and Valkey.

Per iteration, on a fresh split with a base leg and a two-way tip:
save (Postgres insert + hot copy), read with a Redis hit, read with a Redis miss (falls through to
Postgres and re-warms Redis), a Postgres-only read (get_fresh), and completion (the conditional
UPDATE with its event, once every leg has succeeded; the leg steps before it are not timed).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any, TypeVar

from bench.load import percentile
from service.domain.model import LegKind, NewSplit, PlannedLeg, TipRecipient
from service.store.cache import SplitCache, make_redis
from service.store.fingerprints import Fingerprints
from service.store.postgres import Database, open_pool
from service.store.splits import SplitStore

T = TypeVar("T")
OPERATIONS = ("save", "read_redis_hit", "read_redis_miss", "read_postgres_only", "complete")
MERCHANT_WALLET = "bench-merchant-wallet"
OWNER = "bench-store"


@dataclass
class StoreTimings:
    samples: dict[str, list[float]] = field(default_factory=lambda: {name: [] for name in OPERATIONS})

    def ms(self, operation: str, fraction: float) -> float:
        return percentile(self.samples[operation], fraction) * 1000.0

    def summary(self) -> dict[str, Any]:
        return {
            name: {
                "n": len(values),
                "p50_ms": round(self.ms(name, 0.5), 3),
                "p99_ms": round(self.ms(name, 0.99), 3),
            }
            for name, values in self.samples.items()
        }


@contextmanager
def open_store(database_url: str, redis_url: str, encryption_key: str) -> Iterator[SplitStore]:
    """A SplitStore as the app builds it (one pooled connection is enough for a serial loop)."""
    db = Database(open_pool(database_url, min_size=1, max_size=2, timeout=5))
    client = make_redis(redis_url, socket_timeout=2)
    try:
        yield SplitStore(db, SplitCache(client), Fingerprints.from_setting(encryption_key))
    finally:
        client.close()
        db.close()


def bench_split(seed: str | None = None) -> NewSplit:
    """A realistic sale: 1,100 sats, 100 of them tip split between two recipients."""
    seed = seed or secrets.token_hex(16)
    # A mainnet BOLT11 for this amount is about 360 characters; the size matters for Redis memory.
    request = "lnbc11u1p" + hashlib.sha512(seed.encode()).hexdigest() * 3
    legs = (
        PlannedLeg(LegKind.BASE, MERCHANT_WALLET, 1_000, 0),
        PlannedLeg(LegKind.TIP, "bench_alice", 50, 1, "bench-alice-wallet"),
        PlannedLeg(LegKind.TIP, "bench_bob", 50, 2, "bench-bob-wallet"),
    )
    return NewSplit(
        payment_hash=hashlib.sha256(seed.encode()).hexdigest(),
        payment_request=request[:360],
        invoice_sats=1_100,
        base_sats=1_000,
        tip_sats=100,
        tip_percent=Decimal("10"),
        merchant_wallet_id=MERCHANT_WALLET,
        merchant_key_fingerprint=hashlib.sha256(secrets.token_bytes(16)).hexdigest(),
        tip_recipients=(TipRecipient("bench_alice", Fraction(1)), TipRecipient("bench_bob", Fraction(1))),
        legs=legs,
        display_currency="USD",
        base_amount_display=Decimal("0.70"),
        tip_amount_display=Decimal("0.07"),
        memo="bench sale",
        environment="benchmark",
        expires_at=datetime.now(UTC) + timedelta(hours=24),
        client_total_sats=1_100,
    )


def _timed(samples: list[float], call: Callable[[], T]) -> T:
    began = time.perf_counter()
    value = call()
    samples.append(time.perf_counter() - began)
    return value


def run_store_bench(store: SplitStore, iterations: int, warmup: int = 50) -> StoreTimings:
    """`warmup` untimed iterations first (pool, prepared statements, caches), then `iterations` timed."""
    timings = StoreTimings()
    scratch = StoreTimings()
    for index in range(warmup + iterations):
        target = timings if index >= warmup else scratch
        _one_iteration(store, target.samples)
    return timings


def _one_iteration(store: SplitStore, samples: dict[str, list[float]]) -> None:
    new = bench_split()
    payment_hash = new.payment_hash
    split = _timed(samples["save"], lambda: store.save(new))
    hit = _timed(samples["read_redis_hit"], lambda: store.get(payment_hash))
    store.cache.delete(payment_hash)
    missed = _timed(samples["read_redis_miss"], lambda: store.get(payment_hash))
    _timed(samples["read_postgres_only"], lambda: store.get_fresh(payment_hash))
    if hit is None or missed is None:
        raise RuntimeError("the store lost a split it had just saved")
    store.mark_paid(payment_hash, source="bench")
    store.claim(payment_hash, OWNER, lease_seconds=300)
    invoices = {}
    for leg in split.legs:
        leg_hash = hashlib.sha256(f"{payment_hash}:{leg.id}".encode()).hexdigest()
        invoices[leg.id] = (f"lnbc{leg.sats}n1{leg_hash}", leg_hash)
    store.start_sending(payment_hash, invoices, list(invoices))
    store.mark_legs_succeeded(list(invoices))
    done = _timed(samples["complete"], lambda: store.complete(payment_hash, OWNER))
    if done.status != "completed":
        raise RuntimeError(f"completion left the split {done.status}")


def redis_bytes_per_open_split(store: SplitStore, count: int) -> float:
    """Valkey's used_memory growth per saved (still open) split, over `count` new splits."""
    before = int(store.cache.redis.info("memory")["used_memory"])
    for _ in range(count):
        store.save(bench_split())
    after = int(store.cache.redis.info("memory")["used_memory"])
    return (after - before) / count
