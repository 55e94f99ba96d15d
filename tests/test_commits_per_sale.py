"""Durable commits per whole sale (create, pay, forward): each writing commit is an fsync, and
on one Postgres they decide how many sales the fleet takes.

Counted exactly with the transaction id counter (every writing transaction takes one id;
reads take none): pg_stat_database's xact_commit is published by each backend only when it
idles, up to seconds late, so it cannot judge a single sale.
"""

from __future__ import annotations

import psycopg

from tests.fixtures.payments import sale_body


def next_xid(pg_url: str) -> int:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        # xmax of a snapshot: the next id to be assigned; reading it assigns none.
        return int(conn.execute("SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint").fetchone()[0])


def test_a_three_leg_sale_takes_four_durable_commits(sale_client, sim, merchant, tipee, pg_url):
    body = sale_body(merchant, 1000, 150, [tipee(), tipee()])
    before = next_xid(pg_url)
    created = sale_client.post("/api/blink/create-invoice", json=body)
    payment_hash = created.get_json()["invoice"]["paymentHash"]
    sim.pay(payment_hash)
    response = sale_client.post("/api/blink/forward-with-tips", json={"paymentHash": payment_hash})
    assert response.status_code == 200, response.get_json()
    status = sale_client.get(f"/api/payment-status/{payment_hash}").get_json()
    assert status["status"] == "completed" and len(status["legs"]) == 3

    # Saved; paid and claimed; the legs' invoices recorded and sending; paid legs and completion.
    assert next_xid(pg_url) - before == 4
