"""Lightning Address payouts in the store (migration 006): a merchant without a key, legs that
say how they are paid, and the amounts a succeeded leg must account for."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
import redis

from service.domain.model import LegKind, LegStatus, Payout, PlannedLeg
from service.store.cache import SplitCache, make_redis
from service.store.errors import ConstraintViolation
from service.store.postgres import Database
from service.store.splits import SplitStore
from tests.test_split_store import FINGERPRINTS, FakeClock, new_split, payment_hash

SHOP = "shop@example.com"
TIPEE = "tipee@example.org"


@pytest.fixture
def store(database: Database, clean_redis: str) -> Iterator[SplitStore]:
    client: redis.Redis = make_redis(clean_redis, socket_timeout=2)
    yield SplitStore(database, SplitCache(client), FINGERPRINTS, None, FakeClock())
    client.close()


def address_merchant_split(seed: str):
    """A sale whose merchant settles to a Lightning Address: no wallet, no key."""
    base = new_split(seed, tips=(("alice", 60),))
    legs = (
        PlannedLeg(LegKind.BASE, SHOP, 900, 0, payout=Payout.LNURL),
        PlannedLeg(LegKind.TIP, TIPEE, 60, 1, payout=Payout.LNURL),
    )
    return dataclasses.replace(
        base,
        merchant_wallet_id=None,
        merchant_key_fingerprint=None,
        merchant_payout_address=SHOP,
        invoice_sats=960,
        legs=legs,
    )


def paid_and_sending(store: SplitStore, seed: str, new) -> list:
    split = store.save(new)
    store.mark_paid(split.payment_hash, "webhook")
    claimed = store.claim(split.payment_hash, "worker-1", 300)
    invoices = {
        leg.id: (f"lnbc{leg.sats}n1p{seed}{leg.position}", payment_hash(f"{seed}-{leg.id}"))
        for leg in claimed.legs
    }
    return store.start_sending(split.payment_hash, invoices, list(invoices))


def test_a_merchant_paid_at_an_address_round_trips_through_postgres_and_redis(store: SplitStore) -> None:
    saved = store.save(address_merchant_split("addr-1"))
    assert saved.merchant_wallet_id is None and saved.merchant_key_fingerprint is None
    assert saved.merchant_payout_address == SHOP
    expected = [(SHOP, Payout.LNURL), (TIPEE, Payout.LNURL)]
    assert [(leg.recipient, leg.payout) for leg in saved.legs] == expected

    cached = store.get(saved.payment_hash)
    fresh = store.get_fresh(saved.payment_hash)
    for split in (cached, fresh):
        assert split.merchant_payout_address == SHOP
        assert split.merchant_key_fingerprint is None
        assert {leg.payout for leg in split.legs} == {Payout.LNURL}


def test_a_blink_leg_succeeds_with_the_whole_leg_received_and_no_fee(store: SplitStore) -> None:
    sending = paid_and_sending(store, "blink-1", new_split("blink-1"))
    done = store.mark_legs_succeeded([leg.id for leg in sending])
    assert {leg.status for leg in done} == {LegStatus.SUCCEEDED}
    assert all(leg.received_sats == leg.sats and leg.fee_sats == 0 for leg in done)
    assert all(leg.payout == Payout.BLINK for leg in done)


def test_an_lnurl_leg_cannot_succeed_without_its_fee_on_record(store: SplitStore) -> None:
    sending = paid_and_sending(store, "addr-2", address_merchant_split("addr-2"))
    with pytest.raises(ConstraintViolation) as excinfo:
        store.mark_legs_succeeded([sending[0].id])
    assert excinfo.value.constraint == "payment_legs_succeeded_has_fee"
    assert store.get_fresh(address_merchant_split("addr-2").payment_hash).legs[0].status == LegStatus.SENDING
