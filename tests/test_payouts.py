"""The merchant's payout log and retry (issue 15) against real Postgres, Valkey and the simulator.

A sale whose base leg fails on its only attempt becomes `failed`; its merchant sees it in the
payout log (JSON and CSV) and nobody else does; the merchant's retry hands it to the worker,
which completes it once the fault is gone, paying every leg exactly once.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from datetime import UTC, datetime

import psycopg
import pytest

from service.blink.client import OP_WALLETS
from service.worker import Worker
from tests.fixtures.audit import split_events
from tests.fixtures.payments import sale_body
from tests.test_probing_holes import blink_calls

PAYOUTS = "/api/reports/payouts"


@pytest.fixture
def app(make_sale_app):
    """Legs get one attempt (the first failure fails the sale), paid one after another."""
    return make_sale_app(leg_max_attempts=1, forward_leg_concurrency=1)


def key_of(account: dict) -> dict:
    return {"X-API-KEY": account["apiKey"]}


def sale(client, sim, merchant: dict, recipients: list[dict], *, fail: bool) -> str:
    body = sale_body(merchant, 1300, 300, [{**recipients[0], "share": 2}, *recipients[1:]])
    created = client.post("/api/blink/create-invoice", json=body)
    assert created.status_code == 200, created.get_json()
    payment_hash = created.get_json()["invoice"]["paymentHash"]
    sim.pay(payment_hash)
    if fail:
        sim.fault("lnInvoicePaymentSend", "error", count=1)  # the base leg, paid first
    forwarded = client.post("/api/blink/forward-with-tips", json={"paymentHash": payment_hash})
    assert (forwarded.status_code >= 500) is fail
    sim.clear_faults()
    return payment_hash


def test_a_failed_sale_is_in_its_merchants_payout_log_and_no_one_elses(app, sim, merchant, tipee):
    client, other = app.test_client(), sim.create_account(balance=0)
    alice, bob = tipee(), tipee()
    failed = sale(client, sim, merchant, [alice, bob], fail=True)
    theirs = sale(client, sim, other, [alice, bob], fail=False)

    only_failed = client.get(PAYOUTS, query_string={"status": "failed"}, headers=key_of(merchant))
    everything = client.get(PAYOUTS, headers=key_of(merchant)).get_json()
    still_open = client.get(PAYOUTS, query_string={"status": "open"}, headers=key_of(merchant)).get_json()

    assert only_failed.status_code == 200
    assert only_failed.headers["Cache-Control"] == "private, no-store"
    (leg,) = only_failed.get_json()["payouts"]
    assert leg["paymentHash"] == failed and leg["saleStatus"] == "failed"
    assert (leg["kind"], leg["recipient"], leg["sats"]) == ("base", merchant["btcWalletId"], 1000)
    assert (leg["status"], leg["attempts"], leg["nextAttemptAt"], leg["feeSats"]) == ("failed", 1, None, None)
    assert leg["lastError"]
    assert [
        (p["kind"], p["recipient"], p["sats"], p["feeSats"], p["status"]) for p in everything["payouts"]
    ] == [
        ("tip", bob["username"], 100, 0, "succeeded"),
        ("tip", alice["username"], 200, 0, "succeeded"),
        ("base", merchant["btcWalletId"], 1000, None, "failed"),
    ]
    assert everything["nextCursor"] is None and everything["status"] == "all"
    assert [p["kind"] for p in still_open["payouts"]] == ["base"]
    other_log = client.get(PAYOUTS, headers=key_of(other)).get_json()["payouts"]
    assert {p["paymentHash"] for p in other_log} == {theirs}
    assert (
        client.get(PAYOUTS, query_string={"status": "failed"}, headers=key_of(other)).get_json()["payouts"]
        == []
    )

    mine_csv = client.get(f"{PAYOUTS}.csv", query_string={"status": "failed"}, headers=key_of(merchant))
    assert mine_csv.status_code == 200 and mine_csv.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(mine_csv.get_data(as_text=True))))
    other_csv = client.get(f"{PAYOUTS}.csv", headers=key_of(other))
    assert [(r["payment_hash"], r["kind"], r["status"], r["attempts"]) for r in rows] == [
        (failed, "base", "failed", "1")
    ]
    assert failed not in other_csv.get_data(as_text=True)


def test_the_merchants_retry_completes_the_sale_once_the_fault_is_gone(app, sim, merchant, tipee):
    client, svc = app.test_client(), app.extensions["blinkpos"]
    alice, bob = tipee(), tipee()
    payment_hash = sale(client, sim, merchant, [alice, bob], fail=True)

    retried = client.post(f"/api/payouts/{payment_hash}/retry", headers=key_of(merchant))

    assert retried.status_code == 202, retried.get_json()
    assert retried.get_json() == {"paymentHash": payment_hash, "status": "forwarding", "legsReset": 1}
    events = [e for e in split_events(svc.store, payment_hash) if e["event_type"] == "retry_requested"]
    assert [e["data"]["source"] for e in events] == ["merchant"]
    again = client.post(f"/api/payouts/{payment_hash}/retry", headers=key_of(merchant))
    assert (again.status_code, again.get_json()["code"]) == (409, "split_not_failed")

    Worker.from_services(svc).run_once()

    split = svc.store.get_fresh(payment_hash)
    assert str(split.status) == "completed"
    transfers = Counter(t["paymentHash"] for t in sim.ledger())
    assert [transfers[leg.payment_hash] for leg in split.legs] == [1, 1, 1]
    assert sim.balance(merchant["btcWalletId"]) == 1000
    assert (sim.balance(alice["btcWalletId"]), sim.balance(bob["btcWalletId"])) == (200, 100)
    done = client.post(f"/api/payouts/{payment_hash}/retry", headers=key_of(merchant))
    assert (done.status_code, done.get_json()["details"]["status"]) == (409, "completed")


def test_a_retry_of_anything_but_the_merchants_own_failed_sale_is_refused(app, sim, merchant, tipee):
    client, other, stranger = app.test_client(), sim.create_account(balance=0), sim.create_account()
    recipients = [tipee()]
    failed = sale(client, sim, merchant, recipients, fail=True)
    theirs_failed = sale(client, sim, other, recipients, fail=True)
    unpaid = client.post("/api/blink/create-invoice", json=sale_body(merchant, 500)).get_json()["invoice"]

    def retry(payment_hash: str, headers: dict) -> tuple[int, str]:
        answer = client.post(f"/api/payouts/{payment_hash}/retry", headers=headers)
        return answer.status_code, answer.get_json()["code"]

    assert retry(theirs_failed, key_of(merchant)) == (404, "split_not_found")
    assert retry("ab" * 32, key_of(merchant)) == (404, "split_not_found")
    assert retry("not-a-hash", key_of(merchant)) == (400, "invalid_payment_hash")
    assert retry(unpaid["paymentHash"], key_of(merchant)) == (409, "split_not_failed")
    assert retry(failed, {}) == (401, "unauthorized")
    assert retry(failed, key_of(stranger)) == (401, "unauthorized")
    store = app.extensions["blinkpos"].store
    assert [str(store.get_fresh(h).status) for h in (failed, theirs_failed)] == ["failed", "failed"]


def test_retries_are_rate_limited_per_sale(make_sale_app, sim, merchant, tipee):
    app = make_sale_app(
        leg_max_attempts=1, forward_leg_concurrency=1, rate_limit_forward_per_hash_per_minute=1
    )
    client = app.test_client()
    payment_hash = sale(client, sim, merchant, [tipee()], fail=True)

    first = client.post(f"/api/payouts/{payment_hash}/retry", headers=key_of(merchant))
    second = client.post(f"/api/payouts/{payment_hash}/retry", headers=key_of(merchant))

    assert first.status_code == 202
    assert (second.status_code, second.get_json()["code"]) == (429, "rate_limited")
    assert int(second.headers["Retry-After"]) >= 1


def test_another_merchants_retries_of_a_sale_do_not_use_up_its_merchants_allowance(
    make_sale_app, sim, merchant, tipee
):
    app = make_sale_app(
        leg_max_attempts=1, forward_leg_concurrency=1, rate_limit_forward_per_hash_per_minute=1
    )
    client, other = app.test_client(), sim.create_account(balance=0)
    payment_hash = sale(client, sim, merchant, [tipee()], fail=True)
    sale(client, sim, other, [tipee()], fail=False)  # a key that made a sale here

    meddling = [client.post(f"/api/payouts/{payment_hash}/retry", headers=key_of(other)) for _ in range(2)]
    assert [answer.status_code for answer in meddling] == [404, 404]
    own = client.post(f"/api/payouts/{payment_hash}/retry", headers=key_of(merchant))
    assert own.status_code == 202, own.get_json()


def test_the_log_pages_by_keyset_without_gaps_or_repeats(app, sim, merchant, tipee):
    client = app.test_client()
    hashes = [sale(client, sim, merchant, [tipee(), tipee()], fail=False) for _ in range(3)]
    whole = client.get(PAYOUTS, headers=key_of(merchant)).get_json()["payouts"]

    seen, cursor = [], None
    while True:
        query = {"limit": 4, **({"cursor": cursor} if cursor else {})}
        page = client.get(PAYOUTS, query_string=query, headers=key_of(merchant)).get_json()
        seen += page["payouts"]
        cursor = page["nextCursor"]
        if cursor is None:
            break

    assert len(whole) == 9 and seen == whole
    assert [p["paymentHash"] for p in whole[::3]] == hashes[::-1]


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ({"status": "stuck"}, "invalid_payout_query"),
        ({"limit": "0"}, "invalid_payout_query"),
        ({"limit": "501"}, "invalid_payout_query"),
        ({"limit": "abc"}, "invalid_payout_query"),
        ({"cursor": "garbage!"}, "invalid_payout_query"),
        ({"cursor": "MjAyNi0wMS0wMXw5OTk5OTk5OTk5OTk5OTk5OTk5OTk"}, "invalid_payout_query"),
        ({"from": "2026-13-01"}, "invalid_date"),
        ({"tz": "Mars/Olympus"}, "invalid_timezone"),
    ],
)
def test_a_bad_log_query_is_refused_with_a_stable_code(app, sim, merchant, tipee, query, code):
    client = app.test_client()
    sale(client, sim, merchant, [tipee()], fail=False)

    answer = client.get(PAYOUTS, query_string=query, headers=key_of(merchant))

    assert (answer.status_code, answer.get_json()["code"]) == (400, code)


def test_the_log_needs_a_merchants_key(app, sim):
    for headers in ({}, key_of(sim.create_account())):
        for path in (PAYOUTS, f"{PAYOUTS}.csv"):
            answer = app.test_client().get(path, headers=headers)
            assert (answer.status_code, answer.get_json()["code"]) == (401, "unauthorized")


def test_without_dates_the_log_looks_back_far_enough_to_show_last_weeks_stuck_tip(
    app, sim, merchant, tipee, clean_db
):
    client = app.test_client()
    stuck = sale(client, sim, merchant, [tipee(), tipee()], fail=True)
    with psycopg.connect(clean_db, autocommit=True) as conn:
        conn.execute(
            "UPDATE payment_splits SET created_at = created_at - interval '10 days' WHERE payment_hash = %s",
            (stuck,),
        )

    by_default = client.get(PAYOUTS, query_string={"status": "failed"}, headers=key_of(merchant)).get_json()
    today = datetime.now(UTC).date().isoformat()
    today_only = client.get(
        PAYOUTS, query_string={"status": "failed", "from": today}, headers=key_of(merchant)
    ).get_json()
    as_csv = client.get(f"{PAYOUTS}.csv", query_string={"status": "failed"}, headers=key_of(merchant))

    assert [p["paymentHash"] for p in by_default["payouts"]] == [stuck]
    assert today_only["payouts"] == []
    assert stuck in as_csv.get_data(as_text=True)


def test_a_key_deleted_at_blink_no_longer_reads_the_merchants_books(app, sim, merchant, tipee):
    client = app.test_client()
    sale(client, sim, merchant, [tipee(), tipee()], fail=True)
    # A key Blink accepts still reads; a deleted one is refused everywhere once Blink says so
    # (no positive answer was cached yet: the sale proved the key by its wallet, not here).
    sim.revoke_key(merchant["apiKey"])
    for path in (PAYOUTS, f"{PAYOUTS}.csv", "/api/reports/summary", "/api/reports/sales.csv"):
        answer = client.get(path, headers=key_of(merchant))
        assert answer.status_code == 401, (path, answer.status_code)
        assert answer.get_json()["code"] == "unauthorized"


def test_a_key_blink_accepts_reads_its_books_and_blink_is_asked_once(app, sim, merchant, tipee):
    client = app.test_client()
    sale(client, sim, merchant, [tipee(), tipee()], fail=True)
    before = blink_calls(app, OP_WALLETS)
    for path in (PAYOUTS, "/api/reports/summary", f"{PAYOUTS}.csv"):
        assert client.get(path, headers=key_of(merchant)).status_code == 200, path
    assert blink_calls(app, OP_WALLETS) - before == 1
