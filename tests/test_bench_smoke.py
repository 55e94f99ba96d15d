"""The benchmark code stays runnable: the store benchmark and the load generator, briefly.

These check that the code runs and measures something, never how fast (timings are the
benchmark's business, not a test's).
"""

from __future__ import annotations

import asyncio
import math

import httpx
import pytest

from bench.load import OperationFailed, expect_status, percentile, run_closed_loop
from bench.store_bench import open_store, run_store_bench
from tests.fixtures.servers import TEST_ENCRYPTION_KEY


def test_percentile_interpolates_between_closest_ranks() -> None:
    assert percentile([4.0, 1.0, 3.0, 2.0], 0.5) == 2.5
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.0) == 1.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 1.0) == 4.0
    assert percentile(list(range(101)), 0.99) == pytest.approx(99.0)
    assert math.isnan(percentile([], 0.5))


def test_store_bench_times_every_store_operation(clean_db: str, clean_redis: str) -> None:
    with open_store(clean_db, clean_redis, TEST_ENCRYPTION_KEY) as store:
        timings = run_store_bench(store, iterations=10, warmup=2)
    summary = timings.summary()
    assert set(summary) == {"save", "read_redis_hit", "read_redis_miss", "read_postgres_only", "complete"}
    assert all(entry["n"] == 10 and entry["p50_ms"] > 0 for entry in summary.values())


def test_load_generator_counts_successes_and_failures_by_answer(live_server) -> None:
    async def livez(http: httpx.AsyncClient, index: int) -> None:
        path = "/livez" if index == 0 else "/no-such-page"
        expect_status(await http.get(live_server.url + path), 200)

    result = asyncio.run(run_closed_loop("livez", livez, clients=2, duration_seconds=1.0))
    assert result.succeeded > 0 and result.throughput > 0
    assert result.failed > 0 and set(result.failures) == {"GET /no-such-page -> 404"}
    assert 0 < result.latency_ms(0.5) <= result.latency_ms(0.99)


def test_load_generator_stops_after_the_requested_count(live_server) -> None:
    async def livez(http: httpx.AsyncClient, _index: int) -> None:
        expect_status(await http.get(live_server.url + "/livez"), 200)

    result = asyncio.run(run_closed_loop("livez", livez, clients=4, total_operations=25))
    assert result.succeeded == 25 and result.failed == 0


def test_operation_failed_carries_its_label() -> None:
    assert OperationFailed("POST /x -> 503").label == "POST /x -> 503"


# --- the chaos run's book-keeping must catch what it claims to catch ------------------------------


def _chaos_split(legs: list[tuple[str, str, int, str]]):
    """A completed split whose legs are (kind, recipient, sats, leg payment hash)."""
    from datetime import UTC, datetime

    from service.domain.model import Leg, LegKind, LegStatus, Split, SplitStatus

    now = datetime.now(UTC)
    return Split(
        id=1,
        payment_hash="ab" * 32,
        payment_request="lnbc",
        invoice_sats=sum(leg[2] for leg in legs),
        base_sats=legs[0][2],
        tip_sats=sum(leg[2] for leg in legs[1:]),
        tip_percent=None,
        merchant_wallet_id="w-merchant",
        merchant_key_fingerprint="f",
        tip_recipients=(),
        display_currency="BTC",
        base_amount_display=None,
        tip_amount_display=None,
        memo=None,
        environment="test",
        status=SplitStatus.COMPLETED,
        created_at=now,
        expires_at=now,
        paid_at=now,
        processed_at=now,
        last_error=None,
        claimed_by=None,
        claimed_at=None,
        legs=tuple(
            Leg(
                id=i,
                split_id=1,
                kind=LegKind(kind),
                recipient=recipient,
                recipient_wallet_id=None,
                sats=sats,
                position=i,
                status=LegStatus.SUCCEEDED,
                payment_request="lnbc",
                payment_hash=leg_hash,
                attempts=1,
                last_error=None,
                next_attempt_at=None,
                paid_at=now,
            )
            for i, (kind, recipient, sats, leg_hash) in enumerate(legs)
        ),
    )


def test_chaos_books_catch_a_duplicated_a_missing_and_a_misrouted_payout():
    from collections import Counter

    from bench.chaos_books import MERCHANT, _check_legs

    split = _chaos_split([("base", "w-merchant", 900, "h1"), ("tip", "alice", 100, "h2")])
    wallets = {MERCHANT: "w-merchant", "alice": "w-alice"}
    good = {"h1": {"toWalletId": "w-merchant", "sats": 900}, "h2": {"toWalletId": "w-alice", "sats": 100}}

    def verdict(payouts: Counter, by_hash: dict) -> str:
        return _check_legs(split, payouts, by_hash, wallets, set())

    assert verdict(Counter(h1=1, h2=1), good) == "forwarded"
    assert verdict(Counter(h1=1, h2=2), good) == "duplicated"
    assert verdict(Counter(h1=1), good) == "tip leg never paid"
    misrouted = {**good, "h2": {"toWalletId": "w-merchant", "sats": 100}}
    assert verdict(Counter(h1=1, h2=1), misrouted).endswith("to the wrong place")


def test_chaos_books_count_a_held_payout_that_failed_as_refunded_not_paid():
    from bench.chaos_books import ledger_balances

    def transfer(source, target, sats, status, fee=0):
        return {"fromWalletId": source, "toWalletId": target, "sats": sats, "feeSats": fee, "status": status}

    ledger = [
        transfer(None, "pos", 1000, "SUCCESS"),  # the customer pays
        transfer("pos", "merchant", 900, "FAILURE"),  # held, then failed: refunded
        transfer("pos", "merchant", 900, "SUCCESS"),  # the same invoice paid again
        transfer("pos", None, 90, "SUCCESS", fee=10),  # an external leg and its routing fee
    ]
    assert ledger_balances(ledger) == {"pos": 0, "merchant": 900}
    held = [*ledger[:3], transfer("pos", None, 90, "PENDING", fee=10)]
    assert ledger_balances(held) == {"pos": 0, "merchant": 900}, "a held payment is debited already"


def test_chaos_books_check_a_lightning_address_leg_against_what_it_records():
    from collections import Counter
    from dataclasses import replace

    from bench.chaos_books import MERCHANT, _check_legs, _reserve_left
    from service.domain.model import Payout

    split = _chaos_split([("base", "w-merchant", 900, "h1"), ("tip", "alice@example.com", 100, "h2")])
    base, tip = split.legs
    tip = replace(tip, payout=Payout.LNURL, received_sats=90, fee_sats=3)
    split = replace(split, legs=(base, tip))
    wallets = {MERCHANT: "w-merchant"}
    merchant_payout = {"toWalletId": "w-merchant", "sats": 900, "feeSats": 0}

    def verdict(external: dict) -> str:
        payouts = {"h1": merchant_payout, "h2": external}
        return _check_legs(split, Counter(h1=1, h2=1), payouts, wallets, set())

    assert verdict({"toWalletId": None, "sats": 90, "feeSats": 3}) == "forwarded"
    assert _reserve_left(tip) == 7
    assert "records 90 + fee 3" in verdict({"toWalletId": None, "sats": 91, "feeSats": 3})
    assert verdict({"toWalletId": "w-alice", "sats": 90, "feeSats": 3}).endswith("paid inside Blink")
    greedy = replace(split, legs=(base, replace(tip, received_sats=99, fee_sats=3)))
    overpaid = {"h1": merchant_payout, "h2": {"toWalletId": None, "sats": 99, "feeSats": 3}}
    assert _check_legs(greedy, Counter(h1=1, h2=1), overpaid, wallets, set()).endswith("for a 100-sat leg")
