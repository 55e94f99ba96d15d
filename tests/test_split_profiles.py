"""Split profiles (issue 15): saved per merchant, scoped to it for every verb, copied into a sale.

Real Postgres, Valkey and the Blink simulator: the merchant's key is proved at the simulator,
recipients are resolved there, and the sale by profile is paid and forwarded through it.
"""

from __future__ import annotations

import psycopg
import pytest

from service.store import keys
from tests.fixtures.payments import sale_body

PROFILES = "/api/split-profiles"


def key_of(account: dict) -> dict:
    return {"X-API-KEY": account["apiKey"]}


def profile_body(name: str, *recipients: tuple[dict, int]) -> dict:
    return {"name": name, "recipients": [{"username": r["username"], "share": s} for r, s in recipients]}


def create(client, merchant: dict, body: dict) -> dict:
    response = client.post(PROFILES, json=body, headers=key_of(merchant))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_a_merchant_saves_lists_replaces_and_deletes_its_profiles(sale_client, merchant, tipee):
    alice, bob = tipee(), tipee()

    made = create(sale_client, merchant, profile_body("  Floor staff ", (alice, 2), (bob, 1)))

    assert made["name"] == "Floor staff"
    assert made["recipients"] == [
        {"username": alice["username"], "share": 2},
        {"username": bob["username"], "share": 1},
    ]
    listed = sale_client.get(PROFILES, headers=key_of(merchant))
    assert listed.status_code == 200
    assert listed.headers["Cache-Control"] == "private, no-store"
    assert listed.get_json() == {"profiles": [made]}

    replaced = sale_client.put(
        f"{PROFILES}/{made['id']}", json=profile_body("Bar", (bob, 1.5)), headers=key_of(merchant)
    )
    assert replaced.status_code == 200
    assert replaced.get_json()["recipients"] == [{"username": bob["username"], "share": 1.5}]
    assert replaced.get_json()["createdAt"] == made["createdAt"]
    assert sale_client.get(PROFILES, headers=key_of(merchant)).get_json()["profiles"] == [replaced.get_json()]

    deleted = sale_client.delete(f"{PROFILES}/{made['id']}", headers=key_of(merchant))
    assert deleted.status_code == 204
    assert sale_client.get(PROFILES, headers=key_of(merchant)).get_json() == {"profiles": []}


def test_the_list_is_cached_with_an_expiry_and_every_change_drops_the_copy(sale_app, merchant, tipee):
    client, svc = sale_app.test_client(), sale_app.extensions["blinkpos"]
    key = keys.split_profiles(svc.fingerprints.fingerprint(merchant["apiKey"]))
    made = create(client, merchant, profile_body("Floor", (tipee(), 1)))
    assert svc.redis.exists(key) == 0

    client.get(PROFILES, headers=key_of(merchant))
    assert 0 < svc.redis.ttl(key) <= keys.SPLIT_PROFILES_TTL_SECONDS
    client.put(
        f"{PROFILES}/{made['id']}", json=profile_body("Renamed", (tipee(), 1)), headers=key_of(merchant)
    )
    assert svc.redis.exists(key) == 0
    assert client.get(PROFILES, headers=key_of(merchant)).get_json()["profiles"][0]["name"] == "Renamed"
    client.delete(f"{PROFILES}/{made['id']}", headers=key_of(merchant))
    assert svc.redis.exists(key) == 0


def test_another_merchants_profile_is_not_found_for_every_verb(sale_client, sim, merchant, tipee):
    other = sim.create_account(balance=0)
    alice = tipee()
    made = create(sale_client, merchant, profile_body("Mine", (alice, 1)))
    path = f"{PROFILES}/{made['id']}"

    assert sale_client.get(PROFILES, headers=key_of(other)).get_json() == {"profiles": []}
    put = sale_client.put(path, json=profile_body("Stolen", (alice, 1)), headers=key_of(other))
    delete = sale_client.delete(path, headers=key_of(other))
    sale = sale_client.post(
        "/api/blink/create-invoice", json=sale_body(other, 1100, 100, splitProfileId=made["id"])
    )

    assert (put.status_code, put.get_json()["code"]) == (404, "split_profile_not_found")
    assert (delete.status_code, delete.get_json()["code"]) == (404, "split_profile_not_found")
    assert (sale.status_code, sale.get_json()["code"]) == (400, "unknown_split_profile")
    assert sale_client.get(PROFILES, headers=key_of(merchant)).get_json() == {"profiles": [made]}


def test_a_sale_by_profile_splits_as_the_profile_stood_when_it_was_made(sale_client, sim, merchant, tipee):
    alice, bob, carol = tipee(), tipee(), tipee()
    made = create(sale_client, merchant, profile_body("Floor", (alice, 2), (bob, 1)))
    created = sale_client.post(
        "/api/blink/create-invoice", json=sale_body(merchant, 1300, 300, splitProfileId=made["id"].upper())
    )
    assert created.status_code == 200, created.get_json()
    invoice = created.get_json()["invoice"]
    assert [(r["username"], r["sats"]) for r in invoice["tipRecipients"]] == [
        (alice["username"], 200),
        (bob["username"], 100),
    ]

    path = f"{PROFILES}/{made['id']}"
    assert (
        sale_client.put(path, json=profile_body("Floor", (carol, 1)), headers=key_of(merchant)).status_code
        == 200
    )
    assert sale_client.delete(path, headers=key_of(merchant)).status_code == 204
    sim.pay(invoice["paymentHash"])
    forwarded = sale_client.post("/api/blink/forward-with-tips", json={"paymentHash": invoice["paymentHash"]})

    assert forwarded.status_code == 200, forwarded.get_json()
    assert sim.balance(merchant["btcWalletId"]) == 1000
    assert (sim.balance(alice["btcWalletId"]), sim.balance(bob["btcWalletId"])) == (200, 100)
    assert sim.balance(carol["btcWalletId"]) == 0
    again = sale_client.post(
        "/api/blink/create-invoice", json=sale_body(merchant, 1300, 300, splitProfileId=made["id"])
    )
    assert (again.status_code, again.get_json()["code"]) == (400, "unknown_split_profile")


@pytest.mark.parametrize(
    ("extra", "code"),
    [
        ({"splitProfileId": "not-a-uuid"}, "unknown_split_profile"),
        ({"splitProfileId": 42}, "unknown_split_profile"),
        ({"splitProfileId": "00000000-0000-4000-8000-000000000000"}, "unknown_split_profile"),
        ({"splitProfileId": "PROFILE", "tipRecipient": "alice"}, "split_profile_with_tip_recipients"),
        (
            {"splitProfileId": "PROFILE", "tipRecipients": [{"username": "alice"}]},
            "split_profile_with_tip_recipients",
        ),
    ],
)
def test_create_invoice_refuses_a_bad_profile_reference(sale_client, merchant, tipee, extra, code):
    made = create(sale_client, merchant, profile_body("Floor", (tipee(), 1)))
    if extra["splitProfileId"] == "PROFILE":
        extra = {**extra, "splitProfileId": made["id"]}

    answer = sale_client.post("/api/blink/create-invoice", json=sale_body(merchant, 1100, 100, **extra))

    assert answer.status_code == 400
    assert answer.get_json()["code"] == code
    assert isinstance(answer.get_json()["error"], str)


def test_a_profile_on_a_sale_without_tip_pays_the_merchant_only(sale_client, sim, merchant, tipee):
    alice = tipee()
    made = create(sale_client, merchant, profile_body("Floor", (alice, 1)))
    created = sale_client.post(
        "/api/blink/create-invoice", json=sale_body(merchant, 500, splitProfileId=made["id"])
    )
    assert created.status_code == 200, created.get_json()
    payment_hash = created.get_json()["invoice"]["paymentHash"]
    sim.pay(payment_hash)
    assert (
        sale_client.post("/api/blink/forward-with-tips", json={"paymentHash": payment_hash}).status_code
        == 200
    )
    assert (sim.balance(merchant["btcWalletId"]), sim.balance(alice["btcWalletId"])) == (500, 0)


def many(count: int) -> list[dict]:
    return [{"username": f"someone_{index:02d}", "share": 1} for index in range(count)]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"name": "x", "recipients": []}, "invalid_tip_recipients"),
        ({"name": "x", "recipients": many(21)}, "invalid_tip_recipients"),
        ({"name": "x", "recipients": [{"username": "RECIPIENT", "share": 0}]}, "invalid_tip_recipients"),
        ({"name": "x", "recipients": [{"username": "RECIPIENT", "share": -1}]}, "invalid_tip_recipients"),
        ({"name": "x", "recipients": [{"username": "RECIPIENT", "share": "abc"}]}, "invalid_tip_recipients"),
        ({"name": "x", "recipients": "RECIPIENT"}, "invalid_tip_recipients"),
        ({"name": "x" * 101, "recipients": [{"username": "RECIPIENT", "share": 1}]}, "invalid_profile_name"),
        ({"name": "", "recipients": [{"username": "RECIPIENT", "share": 1}]}, "invalid_profile_name"),
        ({"name": "a\u0000b", "recipients": [{"username": "RECIPIENT", "share": 1}]}, "invalid_profile_name"),
        ({"recipients": [{"username": "RECIPIENT", "share": 1}]}, "invalid_profile_name"),
        (
            {"name": "x", "recipients": [{"username": "RECIPIENT"}, {"username": "RECIPIENT"}]},
            "invalid_tip_recipients",
        ),
        ({"name": "x", "recipients": [{"username": "no such user!"}]}, "invalid_username"),
        ({"name": "x", "recipients": [{"username": "nobody_has_this_name"}]}, "unknown_tip_recipient"),
    ],
)
def test_every_bad_profile_is_refused_with_a_stable_code(sale_client, merchant, tipee, body, code):
    username = tipee()["username"]
    body = {
        **body,
        "recipients": [
            {**r, "username": username if r["username"] == "RECIPIENT" else r["username"]}
            for r in body["recipients"]
        ]
        if isinstance(body["recipients"], list)
        else body["recipients"],
    }
    made = create(sale_client, merchant, profile_body("Kept", ({"username": username}, 1)))

    posted = sale_client.post(PROFILES, json=body, headers=key_of(merchant))
    put = sale_client.put(f"{PROFILES}/{made['id']}", json=body, headers=key_of(merchant))

    for answer in (posted, put):
        assert answer.status_code == 400, answer.get_json()
        assert answer.get_json()["code"] == code
        assert isinstance(answer.get_json()["error"], str)
        for messages in answer.get_json()["details"].get("fields", {}).values():
            assert len(messages) == len(set(messages)), messages
    assert sale_client.get(PROFILES, headers=key_of(merchant)).get_json() == {"profiles": [made]}


@pytest.mark.parametrize("headers", [{}, {"X-API-KEY": "not-a-key-blink-knows"}, {"X-API-KEY": "with space"}])
def test_a_missing_or_refused_key_is_unauthorized_for_every_verb(sale_client, headers):
    path = f"{PROFILES}/00000000-0000-4000-8000-000000000000"
    body = {"name": "x", "recipients": [{"username": "alice", "share": 1}]}
    answers = [
        sale_client.get(PROFILES, headers=headers),
        sale_client.post(PROFILES, json=body, headers=headers),
        sale_client.put(path, json=body, headers=headers),
        sale_client.delete(path, headers=headers),
    ]
    assert [(a.status_code, a.get_json()["code"]) for a in answers] == [(401, "unauthorized")] * 4


def test_a_key_blink_cannot_be_asked_about_is_a_retryable_502(client):
    # The plain app's Blink URL has nothing listening: the key can be neither accepted nor refused.
    answer = client.get("/api/split-profiles", headers={"X-API-KEY": "blink_key_nobody_checked"})
    assert answer.status_code == 502
    assert answer.get_json()["code"] == "blink_unavailable"
    assert answer.get_json()["details"] == {"retryable": True}


def test_an_unknown_or_malformed_id_is_not_found(sale_client, merchant, tipee):
    body = profile_body("x", (tipee(), 1))
    for profile_id in ("00000000-0000-4000-8000-000000000000", "nope", "1"):
        put = sale_client.put(f"{PROFILES}/{profile_id}", json=body, headers=key_of(merchant))
        delete = sale_client.delete(f"{PROFILES}/{profile_id}", headers=key_of(merchant))
        assert [(a.status_code, a.get_json()["code"]) for a in (put, delete)] == [
            (404, "split_profile_not_found")
        ] * 2


def test_recipients_are_checked_as_a_sale_checks_them(make_sale_app, sim, pos_account, merchant, pg_url):
    """The sale's own planner: a Lightning Address is resolved and kept in its one spelling, an
    unreachable one and the POS wallet itself are refused with create-invoice's codes."""
    client = make_sale_app(lnurl_insecure_hosts=(sim.url.removeprefix("http://"),)).test_client()
    wallet = sim.create_lnurl_wallet("profile_" + merchant["username"][-8:])
    hostile = sim.create_lnurl_wallet("hostile_" + merchant["username"][-8:], mode="not_json")

    made = create(
        client, merchant, {"name": "Ext", "recipients": [{"username": wallet["lightningAddress"].upper()}]}
    )
    refused = [
        client.post(
            PROFILES, json={"name": "x", "recipients": [{"username": name}]}, headers=key_of(merchant)
        )
        for name in (hostile["lightningAddress"], pos_account["username"])
    ]
    sale = client.post(
        "/api/blink/create-invoice", json=sale_body(merchant, 1000, 100, splitProfileId=made["id"])
    )

    assert made["recipients"] == [{"username": wallet["lightningAddress"], "share": 1}]
    assert [(r.status_code, r.get_json()["code"]) for r in refused] == [
        (400, "recipient_unreachable"),
        (400, "tip_recipient_is_pos_wallet"),
    ]
    assert sale.status_code == 200, sale.get_json()
    with psycopg.connect(pg_url) as conn:
        legs = conn.execute(
            "SELECT l.kind, l.recipient, l.payout FROM payment_legs l "
            "JOIN payment_splits s ON s.id = l.split_id WHERE s.payment_hash = %s ORDER BY l.position",
            (sale.get_json()["invoice"]["paymentHash"],),
        ).fetchall()
    assert legs == [("base", merchant["btcWalletId"], "blink"), ("tip", wallet["lightningAddress"], "lnurl")]
