"""LnurlPayer against a real LNURL-pay server on loopback: the honest flow and each hostile answer."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from service.lnurl import (
    AmountOutOfRange,
    InvoiceRejected,
    LnurlPayer,
    RecipientInvalid,
    RecipientUnreachable,
    SafeFetcher,
    parse_recipient,
)
from service.lnurl.recipients import encode_lnurl
from tests.lnurl_support import LnurlTestServer, Reply, make_invoice, running_server


@pytest.fixture
def server() -> Iterator[LnurlTestServer]:
    with running_server() as running:
        yield running


def payer_for(server: LnurlTestServer, timeout: float = 2.0) -> LnurlPayer:
    return LnurlPayer(SafeFetcher(timeout_seconds=timeout, insecure_hosts=[server.host_port]))


def recipient(server: LnurlTestServer, address: str):
    return parse_recipient(address, insecure_hosts=[server.host_port])


def test_honest_wallet_gives_a_checked_invoice_for_the_exact_msat(server):
    address = server.pay_wallet("alice", min_msat=1000, max_msat=5_000_000)
    payer = payer_for(server)
    pay_request = payer.pay_request(recipient(server, address))
    assert (pay_request.min_sendable_sats, pay_request.max_sendable_sats) == (1, 5000)
    invoice = payer.request_invoice(recipient(server, address), 1234)
    assert invoice.amount_msat == 1_234_000 and invoice.sats == 1234
    [callback] = server.callbacks("alice")
    assert callback.query == {"amount": ["1234000"]}


def test_lnurl_bech32_reaches_the_same_wallet(server):
    server.pay_wallet("bob")
    lnurl = encode_lnurl(f"{server.base}/.well-known/lnurlp/bob").upper()
    assert payer_for(server).request_invoice(recipient(server, lnurl), 10).sats == 10


def test_comment_is_sent_only_when_allowed_and_cut_to_the_allowed_length(server):
    server.pay_wallet("chatty", comment_allowed=5)
    server.pay_wallet("quiet", comment_allowed=0)
    server.pay_wallet("silent")
    payer = payer_for(server)
    for name in ("chatty", "quiet", "silent"):
        payer.request_invoice(recipient(server, f"{name}@{server.host_port}"), 10, comment="Thanks & bye")
    assert server.callbacks("chatty")[0].query["comment"] == ["Thank"]
    assert "comment" not in server.callbacks("quiet")[0].query
    assert "comment" not in server.callbacks("silent")[0].query


def test_callback_with_its_own_query_gets_amount_appended(server):
    document = {
        "tag": "payRequest",
        "callback": f"{server.base}/cb?user=7",
        "minSendable": 1000,
        "maxSendable": 10_000_000,
        "metadata": "[]",
    }
    server.reply("/.well-known/lnurlp/q", Reply(body=document))
    server.routes["/cb"] = lambda _p, query, _h: Reply(body={"pr": make_invoice(int(query["amount"][0]))})
    payer_for(server).request_invoice(recipient(server, f"q@{server.host_port}"), 3)
    assert server.seen[-1].query == {"user": ["7"], "amount": ["3000"]}


@pytest.mark.parametrize("status", [200, 400, 500])
def test_error_status_at_the_pay_request_becomes_recipient_invalid_with_the_reason(server, status):
    server.reply("/.well-known/lnurlp/gone", Reply(status, {"status": "ERROR", "reason": "User\nnot found"}))
    with pytest.raises(RecipientInvalid) as caught:
        payer_for(server).pay_request(recipient(server, f"gone@{server.host_port}"))
    assert caught.value.reason == "status_error"
    assert "User not found" in caught.value.message


@pytest.mark.parametrize("status", [200, 503])
def test_error_status_at_the_callback_becomes_recipient_invalid_with_the_reason(server, status):
    address = server.pay_wallet("flaky")
    server.reply("/lnurlp/flaky/callback", Reply(status, {"status": "ERROR", "reason": "no route"}))
    with pytest.raises(RecipientInvalid) as caught:
        payer_for(server).request_invoice(recipient(server, address), 10)
    assert caught.value.reason == "status_error" and "no route" in caught.value.message


def test_wrong_tag_is_refused(server):
    server.reply("/.well-known/lnurlp/w", Reply(body={"tag": "withdrawRequest", "callback": server.base}))
    with pytest.raises(RecipientInvalid) as caught:
        payer_for(server).pay_request(recipient(server, f"w@{server.host_port}"))
    assert caught.value.reason == "wrong_tag"


@pytest.mark.parametrize(
    "changes",
    [
        {"callback": "ftp://x"},
        {"callback": None},
        {"minSendable": 0},
        {"minSendable": 5000, "maxSendable": 1000},
        {"maxSendable": "lots"},
        {"metadata": None},
    ],
)
def test_malformed_pay_request_is_refused(server, changes):
    document = {
        "tag": "payRequest",
        "callback": f"{server.base}/cb",
        "minSendable": 1000,
        "maxSendable": 2000,
        "metadata": "[]",
        **changes,
    }
    server.reply("/.well-known/lnurlp/m", Reply(body=document))
    with pytest.raises(RecipientInvalid) as caught:
        payer_for(server).pay_request(recipient(server, f"m@{server.host_port}"))
    assert caught.value.reason == "malformed"


def test_amount_outside_the_range_is_refused_before_the_callback(server):
    address = server.pay_wallet("picky", min_msat=50_000, max_msat=100_000)
    for sats in (49, 101):
        with pytest.raises(AmountOutOfRange) as caught:
            payer_for(server).request_invoice(recipient(server, address), sats)
        assert caught.value.code == "recipient_amount_out_of_range"
        assert (caught.value.min_sats, caught.value.max_sats) == (50, 100)
    assert server.callbacks("picky") == []


@pytest.mark.parametrize(
    ("invoice", "code"),
    [
        (lambda msat: make_invoice(msat + 1000), "invoice_amount_mismatch"),
        (lambda msat: make_invoice(None), "invoice_amountless"),
        (lambda msat: make_invoice(msat, date=int(time.time()) - 3600, expiry=600), "invoice_expired"),
        (lambda msat: make_invoice(msat, currency="tb"), "invoice_wrong_network"),
        (lambda msat: "lnbc1notaninvoice", "invoice_invalid"),
    ],
)
def test_hostile_invoices_are_refused(server, invoice, code):
    address = server.pay_wallet("hostile", invoice=invoice)
    with pytest.raises(InvoiceRejected) as caught:
        payer_for(server).request_invoice(recipient(server, address), 21)
    assert caught.value.code == code


def test_callback_answer_without_an_invoice_is_refused(server):
    address = server.pay_wallet("empty")
    server.reply("/lnurlp/empty/callback", Reply(body={"routes": []}))
    with pytest.raises(RecipientInvalid) as caught:
        payer_for(server).request_invoice(recipient(server, address), 21)
    assert caught.value.reason == "no_invoice"


def test_slow_callback_is_unreachable(server):
    address = server.pay_wallet("slow")
    server.reply("/lnurlp/slow/callback", Reply(body={"pr": "x"}, delay=2.0))
    with pytest.raises(RecipientUnreachable) as caught:
        payer_for(server, timeout=0.5).request_invoice(recipient(server, address), 21)
    assert caught.value.reason == "timeout"


def test_callback_on_another_host_obeys_the_same_rules(server):
    document = {
        "tag": "payRequest",
        "callback": "https://10.0.0.8/cb",
        "minSendable": 1000,
        "maxSendable": 10_000,
        "metadata": "[]",
    }
    server.reply("/.well-known/lnurlp/inside", Reply(body=document))
    with pytest.raises(RecipientUnreachable) as caught:
        payer_for(server).request_invoice(recipient(server, f"inside@{server.host_port}"), 5)
    assert caught.value.reason == "forbidden_address"
