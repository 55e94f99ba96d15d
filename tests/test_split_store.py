"""SplitStore against real Postgres and Valkey: the hybrid read path, secrecy, TTLs, the
claim lease, leg transitions, tip statistics, completion and expiry."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest
import redis

from service.domain.errors import SplitNotCompletable, SplitNotFound
from service.domain.model import (
    Leg,
    LegInvoice,
    LegKind,
    LegStatus,
    NewSplit,
    PlannedLeg,
    Split,
    SplitStatus,
    TipRecipient,
)
from service.store import keys
from service.store.cache import SplitCache, make_redis
from service.store.errors import DuplicateSplit
from service.store.fingerprints import Fingerprints
from service.store.legacy import LegacyFileStore
from service.store.postgres import Database, open_pool
from service.store.splits import SplitStore
from service.store.sql import load_queries
from tests.fixtures.audit import split_events

REPO_ROOT = Path(__file__).resolve().parents[1]
ENCRYPTION_KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
MERCHANT_KEY = "blink_MerchantSecretKey_9f2c7d"
MERCHANT_WALLET = "merchant-wallet-0001"
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
FINGERPRINTS = Fingerprints.from_setting(ENCRYPTION_KEY)


def sql_for_tests():
    return load_queries(REPO_ROOT / "sql" / "testing")


def payment_hash(seed: str) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()


class FakeClock:
    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def new_split(
    seed: str = "sale-1",
    *,
    base: int = 900,
    tips: tuple[tuple[str, int], ...] = (("alice", 60), ("bob", 40)),
    expires_at: datetime | None = None,
    api_key: str = MERCHANT_KEY,
) -> NewSplit:
    tip_total = sum(sats for _, sats in tips)
    legs = [PlannedLeg(LegKind.BASE, MERCHANT_WALLET, base, 0)] if base else []
    legs += [PlannedLeg(LegKind.TIP, name, sats, i + 1) for i, (name, sats) in enumerate(tips)]
    return NewSplit(
        payment_hash=payment_hash(seed),
        payment_request=f"lnbc{base + tip_total}n1p{seed}",
        invoice_sats=base + tip_total,
        base_sats=base,
        tip_sats=tip_total,
        tip_percent=Decimal("11.1") if tips else None,
        merchant_wallet_id=MERCHANT_WALLET,
        merchant_key_fingerprint=FINGERPRINTS.fingerprint(api_key),
        tip_recipients=tuple(TipRecipient(name, Fraction(sats)) for name, sats in tips),
        legs=tuple(legs),
        display_currency="USD",
        base_amount_display=Decimal("5.40"),
        tip_amount_display=Decimal("0.60"),
        memo="coffee",
        environment="test",
        expires_at=expires_at or START + timedelta(hours=24),
        client_total_sats=base + tip_total,
    )


@pytest.fixture
def database(clean_db: str) -> Iterator[Database]:
    db = Database(open_pool(clean_db, min_size=1, max_size=8, timeout=5))
    yield db
    db.close()


@pytest.fixture
def redis_client(clean_redis: str) -> Iterator[redis.Redis]:
    client = make_redis(clean_redis, socket_timeout=2)
    yield client
    client.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(database: Database, redis_client: redis.Redis, clock: FakeClock) -> SplitStore:
    return SplitStore(database, SplitCache(redis_client), FINGERPRINTS, None, clock)


def pay_all_legs(store: SplitStore, split: Split) -> None:
    invoices = {leg.id: (f"lnbc{leg.sats}n1leg{leg.id}", payment_hash(f"leg-{leg.id}")) for leg in split.legs}
    store.start_sending(split.payment_hash, invoices, list(invoices))
    store.mark_legs_succeeded(list(invoices))


# --- save and the read path ---------------------------------------------------------------


def test_save_returns_the_split_with_its_planned_legs(store: SplitStore) -> None:
    split = store.save(new_split())
    assert split.id is not None
    assert split.status is SplitStatus.PENDING
    assert (split.invoice_sats, split.base_sats, split.tip_sats) == (1000, 900, 100)
    assert [(leg.kind, leg.recipient, leg.sats, leg.status) for leg in split.legs] == [
        (LegKind.BASE, MERCHANT_WALLET, 900, LegStatus.PLANNED),
        (LegKind.TIP, "alice", 60, LegStatus.PLANNED),
        (LegKind.TIP, "bob", 40, LegStatus.PLANNED),
    ]
    assert split.legs[0].recipient_wallet_id == MERCHANT_WALLET
    assert split.tip_recipients == (TipRecipient("alice", Fraction(60)), TipRecipient("bob", Fraction(40)))
    assert FINGERPRINTS.matches(MERCHANT_KEY, split.merchant_key_fingerprint)
    assert [e["event_type"] for e in split_events(store, split.payment_hash)] == ["created"]


def test_saving_the_same_payment_hash_twice_raises_duplicate_split(store: SplitStore) -> None:
    store.save(new_split())
    with pytest.raises(DuplicateSplit):
        store.save(new_split())


def test_get_serves_a_saved_split_from_redis(store: SplitStore) -> None:
    saved = store.save(new_split())
    got = store.get(saved.payment_hash)
    assert got == saved
    assert store.cache.counters.snapshot()["hits"] == 1
    assert FINGERPRINTS.matches(MERCHANT_KEY, got.merchant_key_fingerprint)


def test_get_on_a_redis_miss_reads_postgres_and_rewarms_redis(
    store: SplitStore, redis_client: redis.Redis
) -> None:
    saved = store.save(new_split())
    redis_client.delete(keys.tip(saved.payment_hash))

    got = store.get(saved.payment_hash)

    assert got == saved
    assert store.cache.counters.snapshot()["misses"] == 1
    assert redis_client.exists(keys.tip(saved.payment_hash)) == 1
    assert store.get(saved.payment_hash) == saved
    assert store.cache.counters.snapshot()["hits"] == 1


def test_get_falls_back_to_the_legacy_file_read_only(
    database: Database, redis_client: redis.Redis, clock: FakeClock, tmp_path: Path
) -> None:
    legacy_hash = payment_hash("legacy-sale")
    legacy_file = tmp_path / ".tip-store.json"
    legacy_file.write_text(
        json.dumps(
            {
                legacy_hash: {
                    "baseAmount": "1000",
                    "tipAmount": 150,
                    "tipPercent": "15",
                    "tipRecipients": [{"username": "carol", "share": "2"}, {"username": "dave", "share": 1}],
                    "userApiKey": "blink_LegacyPlaintextKey",
                    "userWalletId": "legacy-wallet",
                    "displayCurrency": "EUR",
                    "baseAmountDisplay": "4.00",
                    "tipAmountDisplay": 0.6,
                    "timestamp": 1_700_000_000_000,
                }
            }
        )
    )
    before = legacy_file.read_bytes()
    store = SplitStore(database, SplitCache(redis_client), FINGERPRINTS, LegacyFileStore(legacy_file), clock)

    split = store.get(legacy_hash)

    assert split is not None and split.id is None
    assert split.status is SplitStatus.PENDING
    assert (split.base_sats, split.tip_sats, split.invoice_sats) == (1000, 150, 1150)
    assert split.tip_percent == Decimal("15")
    assert split.tip_recipients == (TipRecipient("carol", Fraction(2)), TipRecipient("dave", Fraction(1)))
    assert split.created_at == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert "blink_LegacyPlaintextKey" not in repr(split)
    assert FINGERPRINTS.matches("blink_LegacyPlaintextKey", split.merchant_key_fingerprint)
    assert store.get(payment_hash("unknown")) is None
    assert legacy_file.read_bytes() == before
    assert store.get_fresh(legacy_hash) is None  # nothing was written to Postgres


def test_legacy_single_tip_recipient_becomes_one_recipient(tmp_path: Path) -> None:
    legacy_file = tmp_path / ".tip-store.json"
    entry = {"baseAmount": 500, "tipAmount": "0", "tipRecipient": "erin", "userApiKey": "k",
             "userWalletId": "w", "timestamp": "1700000000000"}
    legacy_file.write_text(json.dumps({payment_hash("x"): entry, payment_hash("bad"): {"baseAmount": "-1"}}))
    reader = LegacyFileStore(legacy_file)
    record = reader.get(payment_hash("x"))
    assert record is not None
    assert record.split.tip_recipients == (TipRecipient("erin", Fraction(1)),)
    assert record.split.invoice_sats == 500
    assert reader.get(payment_hash("bad")) is None


# --- secrecy and expiry of what is stored --------------------------------------------------


def drive_a_sale_through_every_state(store: SplitStore, seed: str) -> Split:
    split = store.save(new_split(seed))
    store.get(split.payment_hash)
    store.mark_paid(split.payment_hash, "webhook")
    claimed = store.claim(split.payment_hash, "worker-1", 300)
    assert claimed is not None
    pay_all_legs(store, claimed)
    store.get(split.payment_hash)
    return store.complete(split.payment_hash, "worker-1")


def test_no_api_key_in_any_form_is_stored_in_postgres_or_redis(
    store: SplitStore, database: Database, redis_client: redis.Redis
) -> None:
    drive_a_sale_through_every_state(store, "sale-done")
    pending = store.save(new_split("sale-pending"))
    store.cache.delete(pending.payment_hash)
    store.get(pending.payment_hash)  # re-warmed copy

    with database.connection() as conn:
        sql_for_tests().create_text_dump_function.run(conn)
        dump = sql_for_tests().database_text_dump.all(conn)
    assert {row["table_name"] for row in dump} >= {"payment_splits", "payment_legs", "payment_events"}
    everything = "\n".join(row["row_text"] for row in dump)
    assert pending.merchant_key_fingerprint in everything  # the dump really holds the rows
    assert MERCHANT_KEY not in everything
    assert "v1:1:" not in everything  # no ciphertext token of earlier versions

    values = [redis_client.get(key) for key in redis_client.scan_iter("*")]
    assert values, "the pending split's hot copy should be in Redis"
    assert all(MERCHANT_KEY.encode() not in value for value in values)


def test_every_key_the_store_writes_has_an_expiry(store: SplitStore, redis_client: redis.Redis) -> None:
    drive_a_sale_through_every_state(store, "sale-a")
    for seed in ("sale-b", "sale-c"):
        split = store.save(new_split(seed))
        store.mark_paid(split.payment_hash, "poll")
        store.get(split.payment_hash)

    found = list(redis_client.scan_iter("*"))
    assert len(found) == 2
    for key in found:
        assert redis_client.ttl(key) > 0, key


def test_save_sets_the_hot_copy_ttl_to_the_invoice_expiry(
    store: SplitStore, redis_client: redis.Redis
) -> None:
    split = store.save(new_split(expires_at=START + timedelta(hours=2)))
    assert 7190 <= redis_client.ttl(keys.tip(split.payment_hash)) <= 7200


# --- paid, claim, lease ------------------------------------------------------------------


def test_mark_paid_is_idempotent_and_unknown_hashes_raise(store: SplitStore, clock: FakeClock) -> None:
    split = store.save(new_split())
    first = store.mark_paid(split.payment_hash, "webhook")
    clock.advance(seconds=5)
    second = store.mark_paid(split.payment_hash, "poll")
    assert first.status is second.status is SplitStatus.PAID
    assert second.paid_at == first.paid_at == START
    assert [e["event_type"] for e in split_events(store, split.payment_hash)] == ["created", "paid"]
    with pytest.raises(SplitNotFound):
        store.mark_paid(payment_hash("nope"), "webhook")


def test_unpaid_split_cannot_be_claimed(store: SplitStore) -> None:
    split = store.save(new_split())
    assert store.claim(split.payment_hash, "worker-1", 300) is None


def test_claim_is_exclusive_among_concurrent_owners(store: SplitStore) -> None:
    split = store.save(new_split())
    store.mark_paid(split.payment_hash, "webhook")
    owners = [f"owner-{i}" for i in range(6)]
    barrier = threading.Barrier(len(owners))
    results: dict[str, Split | None] = {}

    def attempt(owner: str) -> None:
        barrier.wait()
        results[owner] = store.claim(split.payment_hash, owner, 300)

    threads = [threading.Thread(target=attempt, args=(owner,)) for owner in owners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    winners = [owner for owner, claimed in results.items() if claimed is not None]
    assert len(results) == len(owners)
    assert len(winners) == 1
    fresh = store.get_fresh(split.payment_hash)
    assert fresh.status is SplitStatus.FORWARDING and fresh.claimed_by == winners[0]
    assert [e["event_type"] for e in split_events(store, split.payment_hash)].count("forwarding_started") == 1


def test_an_expired_lease_can_be_reclaimed_but_a_live_one_cannot(store: SplitStore, clock: FakeClock) -> None:
    split = store.save(new_split())
    store.mark_paid(split.payment_hash, "webhook")
    assert store.claim(split.payment_hash, "crashed-worker", 300) is not None

    clock.advance(seconds=299)
    assert store.claim(split.payment_hash, "worker-2", 300) is None
    clock.advance(seconds=2)
    reclaimed = store.claim(split.payment_hash, "worker-2", 300)

    assert reclaimed is not None and reclaimed.claimed_by == "worker-2"
    assert not store.release(split.payment_hash, "crashed-worker")
    with pytest.raises(SplitNotCompletable):
        store.complete(split.payment_hash, "crashed-worker")


def test_release_drops_the_lease_and_keeps_forwarding(store: SplitStore) -> None:
    split = store.save(new_split())
    store.mark_paid(split.payment_hash, "webhook")
    store.claim(split.payment_hash, "worker-1", 300)
    assert store.release(split.payment_hash, "worker-1", error="blink timeout")
    fresh = store.get_fresh(split.payment_hash)
    assert fresh.status is SplitStatus.FORWARDING
    assert (fresh.claimed_by, fresh.last_error) == (None, "blink timeout")
    assert store.claim(split.payment_hash, "worker-2", 300) is not None


# --- legs, stats, completion ----------------------------------------------------------------


def test_leg_invoice_is_recorded_once_and_sending_counts_attempts(store: SplitStore) -> None:
    split = store.save(new_split())
    leg = split.legs[0]

    def stored_leg() -> Leg:
        return store.get_fresh(split.payment_hash).legs[0]

    assert store.start_sending(split.payment_hash, {}, [leg.id]) == []  # no invoice yet: nothing may be sent
    store.start_sending(split.payment_hash, {leg.id: ("lnbc900n1first", payment_hash("inv-1"))}, [])
    invoiced = stored_leg()
    assert invoiced.status is LegStatus.INVOICED and invoiced.payment_request == "lnbc900n1first"
    store.start_sending(split.payment_hash, {leg.id: ("lnbc900n1second", payment_hash("inv-2"))}, [])
    assert stored_leg().payment_request == "lnbc900n1first"

    assert store.start_sending(split.payment_hash, {}, [leg.id])[0].attempts == 1
    failed = store.mark_leg_failed(leg.id, "timeout", START + timedelta(seconds=30))
    assert failed.status is LegStatus.FAILED and failed.next_attempt_at == START + timedelta(seconds=30)
    (retried,) = store.start_sending(split.payment_hash, {}, [leg.id])
    assert retried.attempts == 2 and retried.payment_request == "lnbc900n1first"
    assert store.mark_legs_succeeded([leg.id])[0].status is LegStatus.SUCCEEDED
    assert store.mark_leg_failed(leg.id, "late error", None) is None
    assert store.get_fresh(split.payment_hash).legs[0].status is LegStatus.SUCCEEDED


def test_an_lnurl_invoice_another_leg_stores_is_not_stored_again(store: SplitStore) -> None:
    # The forwarder checks first; this is the guard for two forwards storing it at the same time.
    first, second = store.save(new_split("sale-1")), store.save(new_split("sale-2"))
    shared = LegInvoice("lnbc590n1shared", payment_hash("shared"), 57)
    [sending] = store.start_sending(first.payment_hash, {first.legs[1].id: shared}, [first.legs[1].id])
    assert sending.payment_hash == shared.payment_hash

    leg = second.legs[1]
    assert store.start_sending(second.payment_hash, {leg.id: shared}, [leg.id]) == []
    stored = store.get_fresh(second.payment_hash).legs[1]
    assert stored.payment_hash is None and stored.status is LegStatus.PLANNED


def test_completions_sharing_tip_recipients_settle_side_by_side_without_deadlock(store: SplitStore) -> None:
    # Each completion updates the stats rows of its tip recipients; sales tipping the same people
    # complete at once on a busy till, and none of them may fail for locking those rows crosswise.
    sales = []
    for number in range(32):
        tips = (("alice", 10), ("bob", 10), ("carol", 10))
        split = store.save(new_split(f"side-{number}", tips=tips if number % 2 else tips[::-1]))
        invoices = {leg.id: (f"lnbc{leg.id}", payment_hash(f"side-leg-{leg.id}")) for leg in split.legs}
        store.start_sending(split.payment_hash, invoices, list(invoices))
        sales.append(split)
    start = threading.Barrier(8)
    errors: list[Exception] = []

    def settle(share: list[Split]) -> None:
        start.wait()
        for split in share:
            try:
                store.mark_legs_succeeded([leg.id for leg in split.legs])
            except Exception as error:  # noqa: BLE001 - collected and asserted below
                errors.append(error)

    threads = [threading.Thread(target=settle, args=(sales[i::8],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert [store.recipient_stats(name)["tip_count"] for name in ("alice", "bob", "carol")] == [32, 32, 32]


def test_tip_stats_count_every_settled_tip_exactly_once(store: SplitStore, clock: FakeClock) -> None:
    first = store.save(new_split("s1", tips=(("Alice", 60), ("bob", 40))))
    pay_all_legs(store, first)
    clock.advance(minutes=10)
    second = store.save(new_split("s2", tips=(("alice", 15),)))
    pay_all_legs(store, second)
    clock.advance(minutes=10)
    third = store.save(new_split("s3", tips=(("alice", 125),)))
    pay_all_legs(store, third)
    for leg in third.legs:  # a repeated success (e.g. ALREADY_PAID) must not count again
        assert store.mark_legs_succeeded([leg.id]) == []

    alice = store.recipient_stats("alice")
    assert alice["tip_count"] == 3
    assert alice["total_sats"] == 200
    assert alice["smallest_sats"] == 15
    assert alice["largest_sats"] == 125
    assert alice["average_sats"] == Decimal("66.6667")
    assert alice["first_tip_at"] == START
    assert alice["last_tip_at"] == START + timedelta(minutes=20)
    bob = store.recipient_stats("bob")
    assert (bob["tip_count"], bob["total_sats"]) == (1, 40)
    assert store.recipient_stats(MERCHANT_WALLET) is None  # base legs are not tips


def test_complete_refuses_while_a_leg_is_unpaid(store: SplitStore) -> None:
    split = store.save(new_split())
    store.mark_paid(split.payment_hash, "webhook")
    claimed = store.claim(split.payment_hash, "worker-1", 300)
    pay_all_legs(store, dataclasses.replace(claimed, legs=claimed.legs[:-1]))

    with pytest.raises(SplitNotCompletable):
        store.complete(split.payment_hash, "worker-1")
    assert store.get_fresh(split.payment_hash).status is SplitStatus.FORWARDING

    pay_all_legs(store, dataclasses.replace(claimed, legs=claimed.legs[-1:]))
    done = store.complete(split.payment_hash, "worker-1")
    assert done.status is SplitStatus.COMPLETED and done.processed_at == START and done.claimed_by is None


def test_complete_deletes_the_hot_copy_and_is_idempotent(
    store: SplitStore, redis_client: redis.Redis
) -> None:
    done = drive_a_sale_through_every_state(store, "sale-1")
    assert redis_client.exists(keys.tip(done.payment_hash)) == 0
    assert store.complete(done.payment_hash, "worker-1") == done
    assert store.get(done.payment_hash) == done
    assert redis_client.exists(keys.tip(done.payment_hash)) == 0  # a finished split is not re-warmed
    assert [e["event_type"] for e in split_events(store, done.payment_hash)].count("completed") == 1


def test_fail_marks_the_split_for_an_operator(store: SplitStore) -> None:
    split = store.save(new_split())
    assert store.fail(split.payment_hash, "never paid") is None  # a pending split cannot fail
    store.mark_paid(split.payment_hash, "webhook")
    store.claim(split.payment_hash, "worker-1", 300)
    assert store.fail(split.payment_hash, "stale holder", owner="worker-2") is None  # not its lease
    failed = store.fail(split.payment_hash, "leg out of attempts", owner="worker-1")
    assert failed.status is SplitStatus.FAILED and failed.claimed_by is None


def test_cleanup_expires_pending_splits_past_expiry_but_never_paid_ones(
    store: SplitStore, clock: FakeClock
) -> None:
    stale = store.save(new_split("stale", expires_at=START + timedelta(minutes=10)))
    paid_late = store.save(new_split("paid", expires_at=START + timedelta(minutes=10)))
    store.mark_paid(paid_late.payment_hash, "webhook")
    fresh = store.save(new_split("fresh", expires_at=START + timedelta(hours=2)))
    clock.advance(minutes=11)

    assert store.expire_unpaid() == 1
    assert store.expire_unpaid() == 0

    assert store.get_fresh(stale.payment_hash).status is SplitStatus.EXPIRED
    assert store.get_fresh(paid_late.payment_hash).status is SplitStatus.PAID
    assert store.get_fresh(fresh.payment_hash).status is SplitStatus.PENDING
    assert [e["event_type"] for e in split_events(store, stale.payment_hash)] == ["created", "expired"]
    # A payment that arrives after expiry is still honoured.
    assert store.mark_paid(stale.payment_hash, "late-webhook").status is SplitStatus.PAID
