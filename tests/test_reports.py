"""Merchant reports and recipient stats against real Postgres, Valkey and the Blink simulator.

Bulk sales are written through SplitStore (with a test clock, to place them on chosen days);
a few whole sales go through the HTTP endpoints and the simulator so the reports can be
checked against the simulator's ledger.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest
import redis

from service.api.openapi import build_document
from service.domain.model import LegKind, NewSplit, PlannedLeg, TipRecipient
from service.reports.merchant import MerchantReports
from service.reports.period import parse_period
from service.reports.report_csv import SALE_COLUMNS as COLUMNS
from service.store import keys
from service.store.fingerprints import Fingerprints
from service.store.lookups import LookupCache
from service.store.splits import SplitStore
from service.store.sql import load_queries
from tests.fixtures.payments import sale_body

REPO_ROOT = Path(__file__).resolve().parents[1]
KEY_A = "blink_merchant_A_secret_key_0001"
KEY_B = "blink_merchant_B_secret_key_0002"
WALLET_A = "wallet-merchant-a"
WALLET_B = "wallet-merchant-b"
OWNER = "report-tests"
ZONES = ("UTC", "America/New_York", "Asia/Tokyo")


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Sale:
    """What a test made, to compute the expected report independently of the service."""

    wallet: str
    api_key: str
    at: datetime
    base: int
    tips: tuple[tuple[str, int], ...]
    status: str
    memo: str
    payment_hash: str
    display_currency: str = "BTC"
    base_display: Decimal | None = None
    tip_display: Decimal | None = None
    processed_at: datetime | None = field(default=None)

    @property
    def tip(self) -> int:
        return sum(sats for _, sats in self.tips)


@pytest.fixture(autouse=True)
def blink_accepts_the_test_keys(clean_redis: str, make_config) -> None:
    """The report keys are made up (their sales are written straight through the store), so the
    answer 'Blink accepts this key' that reports also need is planted in Redis, as a request
    that asked Blink would leave it. tests/test_payouts.py covers a key Blink refuses."""
    merchant_fingerprints = Fingerprints.from_setting(make_config().api_key_encryption_key)
    cache = LookupCache(redis.Redis.from_url(clean_redis))
    for api_key in (KEY_A, KEY_B):
        cache.remember_key_accepted(merchant_fingerprints.candidates(api_key)[0])


@pytest.fixture
def store(app) -> SplitStore:
    svc = app.extensions["blinkpos"]
    return SplitStore(svc.db, svc.cache, svc.fingerprints, clock=Clock())


def make_sale(
    store: SplitStore,
    *,
    at: datetime,
    api_key: str = KEY_A,
    wallet: str = WALLET_A,
    base: int = 1000,
    tips: tuple[tuple[str, int], ...] = (),
    status: str = "completed",
    memo: str = "Coffee",
    display: tuple[str, Decimal, Decimal] | None = None,
) -> Sale:
    """A sale written through the store and driven to `status` (completed, pending or failed)."""
    payment_hash = hashlib.sha256(f"{api_key}{at.isoformat()}{memo}{random.random()}".encode()).hexdigest()
    legs = [PlannedLeg(LegKind.BASE, wallet, base, 0)] if base else []
    legs += [PlannedLeg(LegKind.TIP, name, sats, i + 1) for i, (name, sats) in enumerate(tips)]
    tip = sum(sats for _, sats in tips)
    currency, base_display, tip_display = display or ("BTC", None, None)
    store.clock.now = at
    store.save(
        NewSplit(
            payment_hash=payment_hash,
            payment_request=f"lnbc{base + tip}n1{payment_hash[:20]}",
            invoice_sats=base + tip,
            base_sats=base,
            tip_sats=tip,
            tip_percent=Decimal(tip * 100) / base if base and tip else None,
            merchant_wallet_id=wallet,
            merchant_key_fingerprint=store.fingerprints.fingerprint(api_key),
            tip_recipients=tuple(TipRecipient(name) for name, _ in tips),
            legs=tuple(legs),
            display_currency=currency,
            base_amount_display=base_display,
            tip_amount_display=tip_display,
            memo=memo,
            environment="test",
            expires_at=at + timedelta(hours=24),
        )
    )
    sale = Sale(
        wallet, api_key, at, base, tips, status, memo, payment_hash, currency, base_display, tip_display
    )
    if status == "pending":
        return sale
    store.clock.now = at + timedelta(seconds=20)
    store.mark_paid(payment_hash, "test")
    claimed = store.claim(payment_hash, OWNER, 300)
    if status == "failed":
        store.fail(payment_hash, "tip recipient unreachable")
        return sale
    for leg in claimed.legs:
        leg_hash = hashlib.sha256(f"{payment_hash}{leg.id}".encode()).hexdigest()
        store.start_sending(payment_hash, {leg.id: (f"lnbcleg{leg.id}", leg_hash)}, [leg.id])
        store.mark_legs_succeeded([leg.id])
    store.clock.now = at + timedelta(seconds=40)
    store.complete(payment_hash, OWNER)
    sale.processed_at = store.clock.now
    return sale


def days_between(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def local_day(moment: datetime, zone: str) -> date:
    return moment.astimezone(ZoneInfo(zone)).date()


def get_report(client, path: str, api_key: str | None, **args: str):
    headers = {"X-API-KEY": api_key} if api_key is not None else {}
    return client.get(path, query_string=args, headers=headers)


# --- a week of sales for two merchants --------------------------------------------------------

FIRST_DAY, LAST_DAY = date(2026, 3, 6), date(2026, 3, 10)
# Instants that fall on different local days in UTC, New York (DST starts 2026-03-08) and Tokyo.
BOUNDARY_INSTANTS = (
    datetime(2026, 3, 7, 14, 59, 59, tzinfo=UTC),  # Tokyo: 23:59:59 on the 7th
    datetime(2026, 3, 7, 15, 0, tzinfo=UTC),  # Tokyo: midnight of the 8th
    datetime(2026, 3, 8, 4, 59, 59, tzinfo=UTC),  # New York: 23:59:59 EST on the 7th
    datetime(2026, 3, 8, 5, 0, tzinfo=UTC),  # New York: midnight EST of the 8th
    datetime(2026, 3, 9, 3, 59, 59, tzinfo=UTC),  # New York: 23:59:59 EDT on the 8th
    datetime(2026, 3, 9, 4, 0, tzinfo=UTC),  # New York: midnight EDT of the 9th
    datetime(2026, 3, 10, 23, 59, 59, tzinfo=UTC),
    datetime(2026, 3, 11, 0, 0, tzinfo=UTC),  # UTC: the day after the period
    datetime(2026, 3, 6, 0, 0, tzinfo=UTC),
    datetime(2026, 3, 5, 23, 59, 59, tzinfo=UTC),  # UTC: the day before the period
)
RECIPIENTS = ("alice", "bob", "carol_01")


def seed_week(store: SplitStore) -> list[Sale]:
    rng = random.Random(9)
    sales: list[Sale] = []
    instants = list(BOUNDARY_INSTANTS)
    start = datetime(2026, 3, 5, 12, tzinfo=UTC)
    instants += [start + timedelta(seconds=rng.randrange(6 * 86400)) for _ in range(30)]
    for index, at in enumerate(instants):
        api_key, wallet = (KEY_A, WALLET_A) if index % 3 else (KEY_B, WALLET_B)
        chosen = rng.sample(RECIPIENTS, rng.randrange(len(RECIPIENTS) + 1))
        tips = tuple((name, rng.randrange(1, 300)) for name in chosen)
        status = "completed" if index % 7 else rng.choice(["pending", "failed"])
        display = ("USD", Decimal("3.50"), Decimal("0.35")) if index % 5 == 0 else None
        sales.append(
            make_sale(
                store,
                at=at,
                api_key=api_key,
                wallet=wallet,
                base=rng.randrange(0, 5000) if tips else rng.randrange(1, 5000),
                tips=tips,
                status=status,
                memo=f"sale {index}",
                display=display,
            )
        )
    return sales


def in_period(sale: Sale, zone: str, first: date = FIRST_DAY, last: date = LAST_DAY) -> bool:
    return first <= local_day(sale.at, zone) <= last


def expected_summary_days(sales: list[Sale], api_key: str, zone: str) -> list[dict]:
    days = {
        day: {"sales": 0, "tippedSales": 0, "invoiceSats": 0, "merchantSats": 0, "tipSats": 0, "feeSats": 0}
        for day in days_between(FIRST_DAY, LAST_DAY)
    }
    for sale in sales:
        if sale.api_key != api_key or sale.status != "completed" or not in_period(sale, zone):
            continue
        entry = days[local_day(sale.at, zone)]
        entry["sales"] += 1
        entry["tippedSales"] += 1 if sale.tip else 0
        entry["invoiceSats"] += sale.base + sale.tip
        entry["merchantSats"] += sale.base
        entry["tipSats"] += sale.tip
    return [{"date": day.isoformat(), **values} for day, values in days.items()]


@pytest.mark.parametrize("zone", ZONES)
def test_summary_counts_completed_sales_on_their_local_day(client, store, zone):
    sales = seed_week(store)
    for api_key in (KEY_A, KEY_B):
        response = get_report(
            client, "/api/reports/summary", api_key, **{"from": "2026-03-06", "to": "2026-03-10", "tz": zone}
        )
        assert response.status_code == 200, response.get_json()
        report = response.get_json()
        expected_days = expected_summary_days(sales, api_key, zone)
        assert report["days"] == expected_days
        for name in ("sales", "tippedSales", "invoiceSats", "merchantSats", "tipSats", "feeSats"):
            assert report["totals"][name] == sum(day[name] for day in expected_days)
        assert (
            report["totals"]["invoiceSats"] == report["totals"]["merchantSats"] + report["totals"]["tipSats"]
        )

        others = Counter()
        other_sats = Counter()
        for sale in sales:
            if sale.api_key == api_key and sale.status != "completed" and in_period(sale, zone):
                others[sale.status] += 1
                other_sats[sale.status] += sale.base + sale.tip
        assert report["notForwarded"] == {
            status: {"sales": others[status], "invoiceSats": other_sats[status]} for status in others
        }
        usd = [s for s in sales if s.api_key == api_key and s.status == "completed" and in_period(s, zone)]
        usd = [s for s in usd if s.display_currency == "USD"]
        usd_totals = [t for t in report["displayTotals"] if t["currency"] == "USD"]
        if usd:
            assert usd_totals == [
                {
                    "currency": "USD",
                    "sales": len(usd),
                    "baseAmount": str(sum(s.base_display for s in usd).normalize()),
                    "tipAmount": str(sum(s.tip_display for s in usd).normalize()),
                }
            ]
        assert report["period"]["timezone"] == zone
        assert datetime.fromisoformat(report["period"]["start"]) == datetime(
            2026, 3, 6, tzinfo=ZoneInfo(zone)
        )


@pytest.mark.parametrize("zone", ZONES)
def test_tips_report_gives_each_recipient_count_sats_first_and_last(client, store, zone):
    sales = seed_week(store)
    for api_key in (KEY_A, KEY_B):
        response = get_report(
            client, "/api/reports/tips", api_key, **{"from": "2026-03-06", "to": "2026-03-10", "tz": zone}
        )
        assert response.status_code == 200, response.get_json()
        report = response.get_json()
        counted = [
            s for s in sales if s.api_key == api_key and s.status == "completed" and in_period(s, zone)
        ]
        per_recipient: dict[str, list] = defaultdict(list)
        per_day: dict[tuple[str, str], list[int]] = defaultdict(list)
        for sale in counted:
            for name, sats in sale.tips:
                per_recipient[name].append((sale.at, sats))
                per_day[(local_day(sale.at, zone).isoformat(), name)].append(sats)
        expected = sorted(
            (
                {
                    "username": name,
                    "tips": len(entries),
                    "tipSats": sum(sats for _, sats in entries),
                    "firstTipAt": min(at for at, _ in entries).astimezone(ZoneInfo(zone)).isoformat(),
                    "lastTipAt": max(at for at, _ in entries).astimezone(ZoneInfo(zone)).isoformat(),
                }
                for name, entries in per_recipient.items()
            ),
            key=lambda r: (-r["tipSats"], r["username"]),
        )
        assert report["recipients"] == expected
        assert report["totals"] == {
            "recipients": len(expected),
            "tips": sum(r["tips"] for r in expected),
            "tipSats": sum(s.tip for s in counted),
        }
        assert [day["date"] for day in report["days"]] == [
            d.isoformat() for d in days_between(FIRST_DAY, LAST_DAY)
        ]
        for day in report["days"]:
            got = {(day["date"], r["username"]): (r["tips"], r["tipSats"]) for r in day["recipients"]}
            want = {k: (len(v), sum(v)) for k, v in per_day.items() if k[0] == day["date"]}
            assert got == want
            assert day["tipSats"] == sum(sats for _, sats in want.values())


def test_one_merchants_key_never_reveals_the_other_merchants_sales(client, store):
    sales = seed_week(store)
    secret_recipient_sale = make_sale(
        store, at=datetime(2026, 3, 7, 12, tzinfo=UTC), tips=(("only_for_a", 77),), memo="A private memo"
    )
    sales.append(secret_recipient_sale)
    args = {"from": "2026-03-01", "to": "2026-03-31"}
    b_hashes = {s.payment_hash for s in sales if s.api_key == KEY_B}
    a_hashes = {s.payment_hash for s in sales if s.api_key == KEY_A}

    csv_text = get_report(client, "/api/reports/sales.csv", KEY_B, **args).get_data(as_text=True)
    rows = list(csv.DictReader(io.StringIO(csv_text, newline="")))
    assert {row["payment_hash"] for row in rows} == b_hashes
    assert {row["wallet_id"] for row in rows} == {WALLET_B}
    summary = get_report(client, "/api/reports/summary", KEY_B, **args).get_data(as_text=True)
    tips = get_report(client, "/api/reports/tips", KEY_B, **args).get_data(as_text=True)
    for text in (csv_text, summary, tips):
        assert "only_for_a" not in text and "A private memo" not in text
        assert not any(h in text for h in a_hashes)
    b_completed = [s for s in sales if s.api_key == KEY_B and s.status == "completed"]
    assert json.loads(summary)["totals"]["invoiceSats"] == sum(s.base + s.tip for s in b_completed)


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-API-KEY": ""}, {"X-API-KEY": "   "}, {"X-API-KEY": "blink_never_used_for_a_sale"}],
    ids=["missing", "empty", "blank", "unknown"],
)
@pytest.mark.parametrize("path", ["/api/reports/summary", "/api/reports/tips", "/api/reports/sales.csv"])
def test_missing_or_unknown_key_is_401_unauthorized(client, store, headers, path):
    make_sale(store, at=datetime(2026, 3, 7, 12, tzinfo=UTC), memo="must stay private")
    response = client.get(path, headers=headers, query_string={"from": "2026-03-01", "to": "2026-03-31"})
    assert response.status_code == 401
    body = response.get_json()
    assert body["code"] == "unauthorized" and isinstance(body["error"], str)
    assert "must stay private" not in response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("args", "code"),
    [
        ({"from": "2026-3-1", "to": "2026-03-31"}, "invalid_date"),
        ({"from": "20260301", "to": "2026-03-31"}, "invalid_date"),
        ({"from": "2026-02-30", "to": "2026-03-31"}, "invalid_date"),
        ({"from": "2026-03-31", "to": "2026-03-01"}, "invalid_date"),
        ({"to": "yesterday"}, "invalid_date"),
        ({"from": "2026-03-01", "tz": "Mars/Olympus_Mons"}, "invalid_timezone"),
        ({"from": "2026-03-01", "tz": "../../etc/passwd"}, "invalid_timezone"),
        ({"from": "2026-03-01", "tz": "UTC+5"}, "invalid_timezone"),
        ({"from": "2026-03-01", "tz": "posixrules"}, "invalid_timezone"),
        ({"from": "2025-01-01", "to": "2026-01-02"}, "range_too_large"),
    ],
)
def test_bad_query_arguments_are_400_with_a_stable_code(client, store, args, code):
    make_sale(store, at=datetime(2026, 3, 7, 12, tzinfo=UTC))
    for path in ("/api/reports/summary", "/api/reports/tips", "/api/reports/sales.csv"):
        response = get_report(client, path, KEY_A, **args)
        assert response.status_code == 400, (path, response.get_json())
        assert response.get_json()["code"] == code


def test_a_range_of_exactly_366_days_is_accepted(client, store):
    make_sale(store, at=datetime(2025, 1, 1, 0, 0, tzinfo=UTC), base=10)
    make_sale(store, at=datetime(2026, 1, 1, 23, 59, tzinfo=UTC), base=20)
    response = get_report(client, "/api/reports/summary", KEY_A, **{"from": "2025-01-01", "to": "2026-01-01"})
    assert response.status_code == 200
    report = response.get_json()
    assert len(report["days"]) == 366 and report["totals"]["merchantSats"] == 30


def test_dates_default_to_today_in_the_requested_zone():
    now = datetime(2026, 3, 8, 2, 30, tzinfo=UTC)  # still the 7th in New York, the 8th in Tokyo
    assert parse_period({"tz": "America/New_York"}, lambda: now).first_day == date(2026, 3, 7)
    period = parse_period({"tz": "Asia/Tokyo"}, lambda: now)
    assert (period.first_day, period.last_day) == (date(2026, 3, 8), date(2026, 3, 8))
    only_to = parse_period({"to": "2026-02-01"}, lambda: now)
    assert (only_to.first_day, only_to.last_day) == (date(2026, 2, 1), date(2026, 2, 1))
    only_from = parse_period({"from": "2026-03-01"}, lambda: now)
    assert (only_from.first_day, only_from.last_day) == (date(2026, 3, 1), date(2026, 3, 8))


HOSTILE_MEMOS = (
    'He said "hi", then left',
    "line one\nline two\r\nline three\rend",
    ",,,;;;\t\"'",
    "Café ☕ für 2 — 寿司 🍣 naïve",
    '=HYPERLINK("http://evil.example","x")',
    '"',
    "   padded   ",
    "",
)


def test_sales_csv_round_trips_hostile_memos_through_pythons_csv_module(client, store):
    base_time = datetime(2026, 3, 7, 9, tzinfo=UTC)
    made = [
        make_sale(store, at=base_time + timedelta(minutes=i), memo=memo, tips=(("alice", 10 + i), ("bob", 5)))
        for i, memo in enumerate(HOSTILE_MEMOS)
    ]
    pending = make_sale(store, at=base_time + timedelta(hours=2), memo="not paid yet", status="pending")
    failed = make_sale(
        store, at=base_time + timedelta(hours=3), memo="stuck", status="failed", tips=(("bob", 9),)
    )

    response = get_report(
        client, "/api/reports/sales.csv", KEY_A, **{"from": "2026-03-07", "tz": "Europe/Berlin"}
    )
    assert response.status_code == 200
    assert response.is_streamed
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in response.headers["Content-Disposition"]
    raw = response.get_data()
    assert b"\r\n" in raw
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8"), newline="")))
    assert tuple(rows[0]) == COLUMNS
    by_hash = {row[1]: dict(zip(COLUMNS, row, strict=True)) for row in rows[1:]}
    assert len(by_hash) == len(rows) - 1 == len(made) + 2
    berlin = ZoneInfo("Europe/Berlin")
    for sale in made:
        row = by_hash[sale.payment_hash]
        assert row["memo"] == ("'" + sale.memo if sale.memo.startswith("=") else sale.memo)
        assert row["status"] == "completed"
        assert row["tip_recipients"] == ";".join(f"{name}={sats}" for name, sats in sale.tips)
        assert (
            int(row["invoice_sats"]) == int(row["base_sats"]) + int(row["tip_sats"]) == sale.base + sale.tip
        )
        assert datetime.fromisoformat(row["created_at"]) == sale.at
        assert row["created_at"].endswith("+01:00")  # written in the requested zone
        assert datetime.fromisoformat(row["forwarded_at"]) == sale.processed_at.astimezone(berlin)
    assert [row[1] for row in rows[1:]] == [s.payment_hash for s in (*made, pending, failed)]  # oldest first
    assert by_hash[pending.payment_hash]["status"] == "pending"
    assert by_hash[pending.payment_hash]["paid_at"] == by_hash[pending.payment_hash]["forwarded_at"] == ""
    assert by_hash[failed.payment_hash]["status"] == "failed"
    assert (
        by_hash[failed.payment_hash]["paid_at"] != "" and by_hash[failed.payment_hash]["forwarded_at"] == ""
    )


FORMULA_MEMOS = (
    '=HYPERLINK("http://evil.example","click")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(A1:A9)",
    "\t=1+1",
    "\r=1+1",
)


def test_sales_csv_neutralises_cells_a_spreadsheet_would_run_as_formulas(client, store):
    at = datetime(2026, 3, 7, 9, tzinfo=UTC)
    made = [make_sale(store, at=at + timedelta(minutes=i), memo=memo) for i, memo in enumerate(FORMULA_MEMOS)]
    harmless = make_sale(store, at=at + timedelta(hours=1), memo="Tea - no sugar = fine")

    raw = get_report(client, "/api/reports/sales.csv", KEY_A, **{"from": "2026-03-07"}).get_data(as_text=True)
    rows = [dict(zip(COLUMNS, row, strict=True)) for row in csv.reader(io.StringIO(raw, newline=""))][1:]
    memos = {row["payment_hash"]: row["memo"] for row in rows}

    for sale in made:
        # OWASP's rule: a leading quote makes the spreadsheet show the text instead of running it.
        assert memos[sale.payment_hash] == "'" + sale.memo
    assert memos[harmless.payment_hash] == harmless.memo
    for row in rows:
        assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in row.values())


def test_sales_pages_neither_lose_nor_repeat_sales_that_share_a_timestamp(app, store):
    same_moment = datetime(2026, 3, 7, 12, tzinfo=UTC)
    made = [make_sale(store, at=same_moment, memo=f"same second {i}", status="pending") for i in range(7)]
    made += [make_sale(store, at=same_moment + timedelta(seconds=1), status="pending") for _ in range(3)]
    svc = app.extensions["blinkpos"]
    reports = MerchantReports(svc.db, svc.fingerprints.candidates)
    period = parse_period({"from": "2026-03-07"}, lambda: same_moment)
    pages = list(reports.sales(reports.authenticate(KEY_A), period, page_size=3))
    assert [len(page) for page in pages] == [3, 3, 3, 1]
    listed = [sale.payment_hash for page in pages for sale in page]
    assert sorted(listed) == sorted(s.payment_hash for s in made)
    assert len(set(listed)) == len(listed)


# --- recipient stats ----------------------------------------------------------------------------


def test_recipient_stats_are_cached_for_an_hour_and_refreshed_by_a_new_tip(client, store, redis_url):
    make_sale(store, at=datetime(2026, 3, 7, 12, tzinfo=UTC), tips=(("alice", 100), ("bob", 50)))
    cache = redis.Redis.from_url(redis_url)

    first = client.get("/api/stats/recipients/Alice")
    assert first.status_code == 200 and first.headers["X-Cache"] == "MISS"
    assert first.get_json()["tipCount"] == 1 and first.get_json()["totalSats"] == 100
    assert 3500 < cache.ttl(keys.recipient_stats("alice")) <= keys.RECIPIENT_STATS_TTL_SECONDS
    again = client.get("/api/stats/recipients/alice")
    assert again.headers["X-Cache"] == "HIT" and again.get_json() == first.get_json()

    make_sale(store, at=datetime(2026, 3, 8, 12, tzinfo=UTC), tips=(("alice", 300),))
    refreshed = client.get("/api/stats/recipients/alice").get_json()
    assert refreshed == {
        "username": "alice",
        "tipCount": 2,
        "totalSats": 400,
        "averageSats": 200.0,
        "largestSats": 300,
        "smallestSats": 100,
        "firstTipAt": "2026-03-07T12:00:20+00:00",
        "lastTipAt": "2026-03-08T12:00:20+00:00",
    }
    assert cache.exists(keys.recipient_stats("bob")) == 0  # never read, never cached


def test_recipient_stats_unknown_is_404_and_a_bad_username_is_400(client, redis_url):
    missing = client.get("/api/stats/recipients/nobody_here")
    assert missing.status_code == 404 and missing.get_json()["code"] == "recipient_not_found"
    assert redis.Redis.from_url(redis_url).exists(keys.recipient_stats("nobody_here")) == 0
    bad = client.get("/api/stats/recipients/x")
    assert bad.status_code == 400 and bad.get_json()["code"] == "invalid_username"


def test_recipient_stats_are_served_from_postgres_when_redis_is_down(
    clean_db, make_config, private_valkey, store_for
):
    from service import create_app

    flask_app = create_app(make_config(redis_url=private_valkey.url))
    try:
        make_sale(store_for(flask_app), at=datetime(2026, 3, 7, tzinfo=UTC), tips=(("alice", 42),))
        private_valkey.stop()
        response = flask_app.test_client().get("/api/stats/recipients/alice")
        assert response.status_code == 200 and response.get_json()["totalSats"] == 42
    finally:
        flask_app.extensions["blinkpos"].close()


@pytest.fixture
def store_for():
    def build(flask_app) -> SplitStore:
        svc = flask_app.extensions["blinkpos"]
        return SplitStore(svc.db, svc.cache, svc.fingerprints, clock=Clock())

    return build


# --- whole sales through HTTP, reconciled with the simulator's ledger ---------------------------


def received_by_wallet(sim, wallet_ids: set[str]) -> Counter:
    received: Counter = Counter()
    for transfer in sim.ledger():
        if transfer["toWalletId"] in wallet_ids and transfer["fromWalletId"] is not None:
            received[transfer["toWalletId"]] += transfer["sats"]
    return received


def sell(
    client, sim, merchant: dict, amount: int, tip: int = 0, recipients: list[dict] | None = None, **extra
):
    response = client.post(
        "/api/blink/create-invoice", json=sale_body(merchant, amount, tip, recipients, **extra)
    )
    assert response.status_code == 200, response.get_json()
    invoice = response.get_json()["invoice"]
    sim.pay(invoice["paymentHash"])
    forwarded = client.post("/api/blink/forward-with-tips", json={"paymentHash": invoice["paymentHash"]})
    assert forwarded.status_code == 200, forwarded.get_json()
    return invoice["paymentHash"]


def test_reports_of_real_sales_sum_exactly_to_what_the_ledger_shows_each_wallet_received(
    sale_client, sim, merchant, tipee
):
    other_merchant = sim.create_account(balance=0)
    shared, only_a, only_b = tipee(), tipee(), tipee()
    sell(sale_client, sim, merchant, 1000, tip=151, recipients=[shared, only_a])
    sell(sale_client, sim, merchant, 2500, tip=0, memo='Table 4, "the usual"')
    sell(sale_client, sim, merchant, 777, tip=77, recipients=[only_a])
    sell(sale_client, sim, other_merchant, 1200, tip=300, recipients=[shared, only_b])
    sell(sale_client, sim, other_merchant, 90, tip=9, recipients=[shared])
    # An unpaid invoice is listed in the CSV but counts nowhere.
    unpaid = sale_client.post("/api/blink/create-invoice", json=sale_body(merchant, 5000)).get_json()[
        "invoice"
    ]
    stats_before = sale_client.get(f"/api/stats/recipients/{shared['username']}").get_json()

    tipees = [shared, only_a, only_b]
    wallets = {merchant["btcWalletId"], other_merchant["btcWalletId"], *(t["btcWalletId"] for t in tipees)}
    received = received_by_wallet(sim, wallets)
    today = {"from": datetime.now(UTC).date().isoformat()}
    tips_by_recipient: Counter = Counter()
    for account in (merchant, other_merchant):
        summary = get_report(sale_client, "/api/reports/summary", account["apiKey"], **today).get_json()
        assert summary["totals"]["merchantSats"] == received[account["btcWalletId"]]
        tips = get_report(sale_client, "/api/reports/tips", account["apiKey"], **today).get_json()
        assert tips["totals"]["tipSats"] == summary["totals"]["tipSats"]
        for line in tips["recipients"]:
            tips_by_recipient[line["username"]] += line["tipSats"]
        rows = list(
            csv.DictReader(
                io.StringIO(
                    get_report(sale_client, "/api/reports/sales.csv", account["apiKey"], **today).get_data(
                        as_text=True
                    ),
                    newline="",
                )
            )
        )
        completed = [row for row in rows if row["status"] == "completed"]
        assert sum(int(row["base_sats"]) for row in completed) == received[account["btcWalletId"]]
        assert sum(int(row["invoice_sats"]) for row in completed) == summary["totals"]["invoiceSats"]
    for tipee_account in tipees:
        assert tips_by_recipient[tipee_account["username"]] == received[tipee_account["btcWalletId"]] > 0

    merchant_csv = get_report(sale_client, "/api/reports/sales.csv", merchant["apiKey"], **today)
    merchant_rows = list(csv.DictReader(io.StringIO(merchant_csv.get_data(as_text=True), newline="")))
    assert any(row["memo"].startswith('Table 4, "the usual"') for row in merchant_rows)
    unpaid_row = next(row for row in merchant_rows if row["payment_hash"] == unpaid["paymentHash"])
    assert unpaid_row["status"] == "pending" and unpaid_row["forwarded_at"] == ""

    # The public stats (cached by the read above) follow a new tip to that recipient.
    assert stats_before["totalSats"] == received[shared["btcWalletId"]]
    sell(sale_client, sim, merchant, 400, tip=40, recipients=[shared])
    stats_after = sale_client.get(f"/api/stats/recipients/{shared['username']}").get_json()
    assert stats_after["tipCount"] == stats_before["tipCount"] + 1
    assert stats_after["totalSats"] == received_by_wallet(sim, {shared["btcWalletId"]})[shared["btcWalletId"]]


# --- indexes ------------------------------------------------------------------------------------


def plan_nodes(plan: dict) -> Iterator[dict]:
    yield plan
    for child in plan.get("Plans", []):
        yield from plan_nodes(child)


def explain(conn: psycopg.Connection, statement, params: dict) -> list[dict]:
    # EXPLAIN wraps the service's own statement from sql/queries/reports.sql, unchanged.
    row = conn.execute("EXPLAIN (FORMAT JSON) " + statement.sql, params).fetchone()
    return list(plan_nodes(row[0][0]["Plan"]))


def test_report_queries_use_indexes_on_100000_splits(clean_db):
    testing = load_queries(REPO_ROOT / "sql" / "testing")
    reports_sql = load_queries(REPO_ROOT / "sql" / "queries")
    until = datetime(2026, 3, 31, tzinfo=UTC)
    with psycopg.connect(clean_db, autocommit=True) as conn:
        testing.report_test_insert_bulk_splits.run(conn, count=100_000, merchants=50, until=until)
        testing.report_test_vacuum_analyze.run(conn)
        assert conn.execute("SELECT count(*) FROM payment_splits").fetchone()[0] == 100_000
        checked = 0
        # One fingerprint, and two: a merchant's key under the new and the old secret of a rotation.
        for days, fingerprints in (
            (1, ["bulk-fp-7"]),
            (31, ["bulk-fp-7"]),
            (366, ["bulk-fp-7", "bulk-fp-8"]),
        ):
            start = until - timedelta(days=days)
            params = {"fingerprints": fingerprints, "tz": "America/New_York", "start": start, "end": until}
            page = {
                "fingerprints": fingerprints,
                "after_created_at": start,
                "after_id": 0,
                "end": until,
                "limit": 500,
            }
            for statement, args in (
                (reports_sql.report_merchant_known, {"fingerprints": ["bulk-fp-unknown", "bulk-fp-7"]}),
                (reports_sql.report_daily_totals, params),
                (reports_sql.report_tips_by_day, params),
                (reports_sql.report_sales_page, page),
            ):
                nodes = explain(conn, statement, args)
                scans = [n for n in nodes if n.get("Relation Name") in ("payment_splits", "payment_legs")]
                assert scans, statement.name
                seq = [(n["Node Type"], n["Relation Name"]) for n in scans if n["Node Type"] == "Seq Scan"]
                assert seq == [], (statement.name, days, seq)
                checked += 1
    assert checked == 12


# --- OpenAPI ------------------------------------------------------------------------------------


def test_report_routes_are_described_for_the_openapi_document(app):
    rules = {
        rule.endpoint: rule.rule for rule in app.url_map.iter_rules() if rule.endpoint.startswith("reports.")
    }
    assert set(rules.values()) == {
        "/api/reports/summary",
        "/api/reports/tips",
        "/api/reports/sales.csv",
        "/api/stats/recipients/<username>",
    }
    document = json.loads(json.dumps(build_document(app)))
    for rule in rules.values():
        assert "get" in document["paths"][rule.replace("<username>", "{username}")]
    summary_props = document["components"]["schemas"]["ReportSummary"]["properties"]
    assert {"period", "totals", "displayTotals", "notForwarded", "days"} <= set(summary_props)
    assert "from" in document["components"]["schemas"]["ReportPeriod"]["properties"]
    get_tips = document["paths"]["/api/reports/tips"]["get"]
    assert get_tips["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/TipsReport"
    }
    assert "text/csv" in document["paths"]["/api/reports/sales.csv"]["get"]["responses"]["200"]["content"]


def test_routing_fees_of_lightning_address_legs_are_in_the_summary_and_the_csv(client, store):
    at = datetime(2026, 3, 7, 9, tzinfo=UTC)
    paid_out = make_sale(store, at=at, base=900, tips=(("tipee@example.com", 100),))
    inside_blink = make_sale(store, at=at + timedelta(minutes=5), base=500, tips=(("alice", 50),))
    with store.db.connection() as conn:
        # What the forward side records for an LNURL leg: the invoice's amount and the fee paid.
        conn.execute(
            "UPDATE payment_legs SET payout = 'lnurl', received_sats = sats - 3, fee_sats = 2 "
            "WHERE split_id = (SELECT id FROM payment_splits WHERE payment_hash = %s)",
            (paid_out.payment_hash,),
        )
    period = {"from": "2026-03-07", "to": "2026-03-07"}
    summary = get_report(client, "/api/reports/summary", KEY_A, **period).get_json()
    assert summary["totals"]["feeSats"] == 4  # two legs of the first sale, 2 sats each
    assert (
        summary["totals"]["invoiceSats"] == summary["totals"]["merchantSats"] + summary["totals"]["tipSats"]
    )
    assert [day["feeSats"] for day in summary["days"]] == [4]

    raw = get_report(client, "/api/reports/sales.csv", KEY_A, **period).get_data(as_text=True)
    rows = [dict(zip(COLUMNS, row, strict=True)) for row in csv.reader(io.StringIO(raw, newline=""))][1:]
    fees = {row["payment_hash"]: row["fee_sats"] for row in rows}
    assert fees == {paid_out.payment_hash: "4", inside_blink.payment_hash: "0"}
