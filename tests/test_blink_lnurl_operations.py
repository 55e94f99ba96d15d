"""The Blink operations a Lightning Address payout needs (lnInvoiceFeeProbe, transactionsByPaymentHash),
and the whole LNURL path against the simulator's foreign LNURL wallets, honest and hostile."""

from __future__ import annotations

import math
from collections.abc import Iterator
from decimal import Decimal

import pytest

from service.blink import BlinkClient, BlinkRejected, PaymentStatus, TxDirection, TxStatus, send_outcome
from service.lnurl import (
    FeePolicy,
    InvoiceRejected,
    LnurlError,
    LnurlPayer,
    RecipientInvalid,
    RecipientUnreachable,
    SafeFetcher,
    parse_recipient,
)
from service.lnurl.resolver import RecipientResolver


@pytest.fixture
def sim_fees(sim_clean):
    sim_clean.set_fees(1, 5000)
    yield sim_clean
    sim_clean.set_fees(1, 5000)


@pytest.fixture
def blink(sim_fees) -> Iterator[BlinkClient]:
    with BlinkClient(
        sim_fees.graphql_url, connect_timeout=2, read_timeout=5, retry_backoff_seconds=0.01
    ) as client:
        yield client


@pytest.fixture
def pos(sim_fees) -> dict:
    return sim_fees.create_account(balance=100_000)


def sim_host(sim) -> str:
    return sim.url.split("://", 1)[1].rstrip("/")


@pytest.fixture
def payer(sim_fees) -> LnurlPayer:
    return LnurlPayer(SafeFetcher(timeout_seconds=2.0, insecure_hosts=[sim_host(sim_fees)]))


def lnurl_recipient(sim, wallet: dict):
    return parse_recipient(wallet["lightningAddress"], insecure_hosts=[sim_host(sim)])


def expected_fee(sats: int) -> int:
    return 1 + math.ceil(sats * 5000 / 1_000_000)


def test_fee_probe_of_an_outside_invoice_is_the_routing_fee_and_inside_blink_zero(
    sim_fees, blink, pos, payer
):
    wallet = sim_fees.create_lnurl_wallet()
    invoice = payer.request_invoice(lnurl_recipient(sim_fees, wallet), 990)
    assert blink.fee_probe(pos["apiKey"], pos["btcWalletId"], invoice.payment_request) == expected_fee(990)
    merchant = sim_fees.create_account()
    inside = blink.create_invoice(merchant["apiKey"], merchant["btcWalletId"], 500, "sale")
    assert blink.fee_probe(pos["apiKey"], pos["btcWalletId"], inside.payment_request) == 0
    assert sim_fees.balance(pos["btcWalletId"]) == 100_000  # probing moved nothing


def test_fee_probe_of_a_wallet_not_of_the_key_is_rejected(sim_fees, blink, pos):
    other = sim_fees.create_account()
    merchant = sim_fees.create_account()
    inside = blink.create_invoice(merchant["apiKey"], merchant["btcWalletId"], 500, "sale")
    with pytest.raises(BlinkRejected):
        blink.fee_probe(pos["apiKey"], other["btcWalletId"], inside.payment_request)


def test_paid_lightning_address_leg_shows_as_a_successful_send_with_its_fee(sim_fees, blink, pos, payer):
    wallet = sim_fees.create_lnurl_wallet(commentAllowed=10)
    leg_sats = 1000
    fees = FeePolicy(Decimal("1"), 3)
    sats = fees.invoice_sats_for_leg(leg_sats)
    invoice = payer.request_invoice(lnurl_recipient(sim_fees, wallet), sats, comment="Thanks from BlinkPOS")
    fee = blink.fee_probe(pos["apiKey"], pos["btcWalletId"], invoice.payment_request)
    assert fees.fee_fits(leg_sats, sats, fee)
    assert blink.transactions_by_payment_hash(pos["apiKey"], pos["btcWalletId"], invoice.payment_hash) == []
    assert send_outcome([]) is None

    status = blink.pay_invoice(pos["apiKey"], pos["btcWalletId"], invoice.payment_request, "tip")
    assert status is PaymentStatus.SUCCESS
    again = blink.pay_invoice(pos["apiKey"], pos["btcWalletId"], invoice.payment_request, "tip")
    assert again is PaymentStatus.ALREADY_PAID

    [sent] = blink.transactions_by_payment_hash(pos["apiKey"], pos["btcWalletId"], invoice.payment_hash)
    assert (sent.direction, sent.status, sent.fee_sats) == (TxDirection.SEND, TxStatus.SUCCESS, fee)
    assert sent.settlement_sats == -(sats + fee)
    assert send_outcome([sent]) is TxStatus.SUCCESS
    assert sim_fees.balance(pos["btcWalletId"]) == 100_000 - sats - fee >= 100_000 - leg_sats
    view = sim_fees.lnurl_wallet(wallet["name"])
    assert (view["balance"], view["callbacks"], view["comments"]) == (sats, 1, ["Thanks fro"])


def test_a_payment_held_pending_is_learned_by_its_hash_then_its_failure(sim_fees, blink, pos, payer):
    wallet = sim_fees.create_lnurl_wallet()
    invoice = payer.request_invoice(lnurl_recipient(sim_fees, wallet), 200)
    sim_fees.fault("lnInvoicePaymentSend", "pending_then_failure", count=1, delay_ms=60_000)
    assert (
        blink.pay_invoice(pos["apiKey"], pos["btcWalletId"], invoice.payment_request) is PaymentStatus.PENDING
    )
    pending = blink.transactions_by_payment_hash(pos["apiKey"], pos["btcWalletId"], invoice.payment_hash)
    assert send_outcome(pending) is TxStatus.PENDING
    sim_fees.settle(invoice.payment_hash, "FAILURE")
    failed = blink.transactions_by_payment_hash(pos["apiKey"], pos["btcWalletId"], invoice.payment_hash)
    assert send_outcome(failed) is TxStatus.FAILURE
    assert sim_fees.balance(pos["btcWalletId"]) == 100_000  # refunded; the invoice is still payable


@pytest.mark.parametrize(
    ("settings", "error", "code"),
    [
        ({"mode": "wrong_amount"}, InvoiceRejected, "invoice_amount_mismatch"),
        ({"mode": "amountless"}, InvoiceRejected, "invoice_amountless"),
        ({"mode": "expired"}, InvoiceRejected, "invoice_expired"),
        ({"mode": "min_above_amount"}, LnurlError, "recipient_amount_out_of_range"),
        ({"mode": "not_pay_request"}, RecipientInvalid, "recipient_invalid"),
        ({"mode": "error", "step": "payRequest", "httpStatus": 200}, RecipientInvalid, "recipient_invalid"),
        ({"mode": "error", "step": "callback", "httpStatus": 500}, RecipientInvalid, "recipient_invalid"),
        ({"mode": "slow", "delayMs": 3000}, RecipientUnreachable, "recipient_unreachable"),
        ({"mode": "oversized"}, RecipientUnreachable, "recipient_unreachable"),
        ({"mode": "not_json"}, RecipientUnreachable, "recipient_unreachable"),
        ({"mode": "redirect"}, RecipientUnreachable, "recipient_unreachable"),
    ],
)
def test_each_hostile_wallet_is_refused_and_nothing_is_paid(sim_fees, settings, error, code):
    wallet = sim_fees.create_lnurl_wallet(**settings)
    payer = LnurlPayer(SafeFetcher(timeout_seconds=1.0, insecure_hosts=[sim_host(sim_fees)]))
    with pytest.raises(error) as caught:
        payer.request_invoice(lnurl_recipient(sim_fees, wallet), 100)
    assert caught.value.code == code
    assert sim_fees.lnurl_wallet(wallet["name"])["balance"] == 0


@pytest.mark.parametrize("mode", ["description_hash_mismatch", "plain_description"])
def test_description_hash_rules_dropped_by_lud06_do_not_refuse(sim_fees, payer, mode):
    wallet = sim_fees.create_lnurl_wallet(mode=mode)
    assert payer.request_invoice(lnurl_recipient(sim_fees, wallet), 100).sats == 100


def test_resolver_on_a_simulator_wallet_answers_its_range_in_sats(sim_fees, payer):
    wallet = sim_fees.create_lnurl_wallet(minSendable=10_000, maxSendable=50_000_000)
    resolver = RecipientResolver(payer, fees=FeePolicy(), insecure_hosts=[sim_host(sim_fees)])
    for spelling in (wallet["lightningAddress"], wallet["lnurl"], wallet["lnurl"].upper()):
        resolution = resolver.resolve(spelling, leg_sats=1000)
        assert (resolution.min_sendable_sats, resolution.max_sendable_sats) == (10, 50_000)
        assert resolution.normalized == wallet["lightningAddress"].lower()
