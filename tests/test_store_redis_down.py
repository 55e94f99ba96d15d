"""Redis is only the hot copy: with it stopped, the stores keep working from Postgres."""

from __future__ import annotations

from fractions import Fraction

from service.domain.model import SplitStatus, TipRecipient
from service.domain.profiles import ProfileInput
from service.store import keys
from service.store.cache import SplitCache, make_redis
from service.store.postgres import Database
from service.store.profiles import ProfileStore
from service.store.splits import SplitStore
from tests.test_split_store import FINGERPRINTS, MERCHANT_KEY, FakeClock, new_split, pay_all_legs


def test_save_and_get_survive_redis_stopping_mid_test(database: Database, private_valkey) -> None:
    client = make_redis(private_valkey.url, socket_timeout=0.3)
    cache = SplitCache(client)
    store = SplitStore(database, cache, FINGERPRINTS, None, FakeClock())
    before = store.save(new_split("before-outage"))
    assert store.get(before.payment_hash) == before
    assert cache.counters.snapshot()["errors"] == 0

    private_valkey.stop()

    during = store.save(new_split("during-outage"))
    assert store.get(during.payment_hash) == during
    assert store.get(before.payment_hash) == before
    paid = store.mark_paid(during.payment_hash, "webhook")
    claimed = store.claim(paid.payment_hash, "worker-1", 300)
    assert claimed is not None
    pay_all_legs(store, claimed)
    assert store.complete(during.payment_hash, "worker-1").status is SplitStatus.COMPLETED
    assert FINGERPRINTS.matches(MERCHANT_KEY, store.get(before.payment_hash).merchant_key_fingerprint)
    errors_during_outage = cache.counters.snapshot()["errors"]
    assert errors_during_outage >= 4  # the failed set, gets and deletes were all counted

    private_valkey.start()

    assert store.get(before.payment_hash) == before  # a miss after restart (data gone), re-warmed
    assert client.ttl(keys.tip(before.payment_hash)) > 0
    assert cache.counters.snapshot()["errors"] == errors_during_outage
    client.close()


def test_a_dead_redis_costs_at_most_one_short_timeout_per_call(database: Database, private_valkey) -> None:
    import time

    client = make_redis(private_valkey.url, socket_timeout=0.3)
    store = SplitStore(database, SplitCache(client), FINGERPRINTS, None, FakeClock())
    private_valkey.stop()
    started = time.monotonic()
    split = store.save(new_split())
    store.get(split.payment_hash)
    assert time.monotonic() - started < 2.0
    client.close()


def test_split_profiles_work_from_postgres_while_redis_is_down(database: Database, private_valkey) -> None:
    client = make_redis(private_valkey.url, socket_timeout=0.3)
    profiles = ProfileStore(database, client)
    merchant = FINGERPRINTS.candidates(MERCHANT_KEY)
    kept = profiles.create(merchant, ProfileInput("Floor", (TipRecipient("alice", Fraction(2)),)))
    assert profiles.list(merchant) == [kept]

    private_valkey.stop()

    changed = profiles.update(merchant, kept.id, ProfileInput("Bar", (TipRecipient("bob"),)))
    assert profiles.find(merchant, kept.id) == changed
    assert changed.recipients == (TipRecipient("bob"),)

    private_valkey.start()

    assert profiles.list(merchant) == [changed]  # re-read from Postgres and cached again
    assert 0 < client.ttl(keys.split_profiles(merchant[0])) <= keys.SPLIT_PROFILES_TTL_SECONDS
