"""The schema refuses inconsistent data by itself, whatever the Python code does; its views
and maintenance functions answer."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
import redis

from service.store.cache import SplitCache, make_redis
from service.store.errors import ConstraintViolation
from service.store.postgres import Database
from service.store.splits import SplitStore
from tests.fixtures.audit import split_events
from tests.test_split_store import (
    FINGERPRINTS,
    MERCHANT_WALLET,
    START,
    FakeClock,
    drive_a_sale_through_every_state,
    new_split,
    payment_hash,
    sql_for_tests,
)


@pytest.fixture
def store(database: Database, clean_redis: str) -> Iterator[SplitStore]:
    client: redis.Redis = make_redis(clean_redis, socket_timeout=2)
    yield SplitStore(database, SplitCache(client), FINGERPRINTS, None, FakeClock())
    client.close()


# --- database constraints ------------------------------------------------------------------


def raw_insert_params(**overrides) -> dict:
    params = {
        "payment_hash": payment_hash("raw"),
        "payment_request": "lnbc1",
        "invoice_sats": 1000,
        "base_sats": 900,
        "tip_sats": 100,
        "tip_percent": None,
        "merchant_wallet_id": MERCHANT_WALLET,
        "merchant_key_fingerprint": "f",
        "merchant_payout_address": None,
        "tip_recipients": json.dumps([]),
        "display_currency": "BTC",
        "base_amount_display": None,
        "tip_amount_display": None,
        "memo": None,
        "environment": "test",
        "client_total_sats": None,
        "expires_at": START,
        "legs": json.dumps([]),
        "now": START,
    }
    params.update(overrides)
    return params


@pytest.mark.parametrize(
    ("overrides", "constraint"),
    [
        ({"base_sats": 950}, "payment_splits_base_plus_tip_is_invoice"),
        ({"invoice_sats": -100, "base_sats": -200}, "payment_splits_amounts_non_negative"),
        ({"payment_hash": "AB" * 32}, "payment_splits_payment_hash_format"),
        ({"payment_hash": "ab" * 31}, "payment_splits_payment_hash_format"),
        (
            {"legs": json.dumps([{"kind": "base", "recipient": "w", "sats": 0, "position": 0}])},
            "payment_legs_sats_positive",
        ),
        (
            {"legs": json.dumps([{"kind": "fee", "recipient": "w", "sats": 5, "position": 0}])},
            "payment_legs_kind_allowed",
        ),
        (
            {"legs": json.dumps([{"kind": "tip", "recipient": "a", "sats": 5, "position": 0},
                                 {"kind": "tip", "recipient": "a", "sats": 5, "position": 1}])},
            "payment_legs_split_kind_recipient_key",
        ),
        ({"merchant_payout_address": "shop@example.com"}, "payment_splits_one_merchant_destination"),
        ({"merchant_wallet_id": None}, "payment_splits_one_merchant_destination"),
        ({"merchant_key_fingerprint": None}, "payment_splits_wallet_merchant_has_fingerprint"),
        (
            {"legs": json.dumps([{"kind": "tip", "recipient": "a@b.c", "sats": 5, "position": 0,
                                  "payout": "onchain"}])},
            "payment_legs_payout_allowed",
        ),
    ],
)
def test_the_database_refuses_inconsistent_splits(
    store: SplitStore, database: Database, overrides: dict, constraint: str
) -> None:
    with pytest.raises(ConstraintViolation) as excinfo, database.connection() as conn:
        database.q.insert_split.one(conn, **raw_insert_params(**overrides))
    assert excinfo.value.constraint == constraint
    assert store.get_fresh(payment_hash("raw")) is None


def test_the_database_refuses_an_unknown_status_and_events_are_append_only(
    store: SplitStore, database: Database
) -> None:
    split = store.save(new_split())
    tq = sql_for_tests()
    with pytest.raises(ConstraintViolation) as excinfo, database.connection() as conn:
        tq.force_split_status.run(conn, status="refunded", payment_hash=split.payment_hash)
    assert excinfo.value.constraint == "payment_splits_status_allowed"

    with pytest.raises(ConstraintViolation) as excinfo, database.connection() as conn:
        tq.force_leg_status.run(conn, status="sending", leg_id=split.legs[0].id)
    assert excinfo.value.constraint == "payment_legs_invoice_before_sending"

    with database.connection() as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        tq.delete_event.run(conn, split_id=split.id)
    assert len(split_events(store, split.payment_hash)) == 1




def test_reporting_views_and_metric_cleanup_answer(store: SplitStore, database: Database) -> None:
    drive_a_sale_through_every_state(store, "sale-1")
    tq = sql_for_tests()
    with database.connection() as conn:
        counts = tq.count_rows_named_in_views.one(conn)
        long_ago = datetime.now(UTC) - timedelta(days=40)
        tq.insert_metric_at.run(conn, name="old", value=1.0, recorded_at=long_ago)
        tq.insert_metric_at.run(conn, name="new", value=2.0, recorded_at=datetime.now(UTC))
        removed = database.q.cleanup_old_metrics.scalar(conn, days=30)
        remaining = tq.count_metrics.scalar(conn)
    assert counts["leaderboard"] == 2 and counts["daily"] == 1 and counts["active"] == 0
    assert (removed, remaining) == (1, 1)


def test_cleanup_expired_payments_uses_the_database_clock_by_default(
    store: SplitStore, database: Database
) -> None:
    # START lies in the past of the real clock, so the no-argument call expires the pending split.
    split = store.save(new_split("old", expires_at=datetime.now(UTC) - timedelta(minutes=1)))
    with database.connection() as conn:
        assert database.q.expire_unpaid.scalar(conn, now=START) == 0
        expired = sql_for_tests().call_cleanup_expired_payments.scalar(conn)
        status = sql_for_tests().split_status.scalar(conn, payment_hash=split.payment_hash)
    assert (expired, status) == (1, "expired")
