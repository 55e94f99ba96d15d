"""The invoice check: only a validly signed mainnet invoice for exactly the asked amount, with
time left to pay it, is accepted; a description-hash mismatch is only logged."""

from __future__ import annotations

import hashlib
import logging
import time

import pytest
from coincurve import PrivateKey

from service.lnurl import InvoiceRejected, check_invoice
from tests.lnurl_support import make_invoice

METADATA = '[["text/plain", "tip"]]'
METADATA_HASH = hashlib.sha256(METADATA.encode()).hexdigest()


def rejection(payment_request: str, amount_msat: int = 21_000, **options) -> str:
    with pytest.raises(InvoiceRejected) as caught:
        check_invoice(payment_request, amount_msat=amount_msat, **options)
    assert caught.value.code.startswith("invoice_")
    return caught.value.code


def test_good_invoice_is_returned_with_its_hash_amount_and_expiry():
    request = make_invoice(21_000, description_hash=METADATA_HASH, expiry=300)
    checked = check_invoice(request, amount_msat=21_000, metadata=METADATA)
    assert checked.payment_request == request
    assert len(checked.payment_hash) == 64 and checked.sats == 21
    assert abs(checked.expires_at - (time.time() + 300)) < 5


def test_amount_must_equal_the_requested_msat_exactly():
    assert rejection(make_invoice(21_001)) == "invoice_amount_mismatch"
    assert rejection(make_invoice(20_000)) == "invoice_amount_mismatch"
    assert rejection(make_invoice(2_100_000)) == "invoice_amount_mismatch"


def test_amountless_invoice_is_refused():
    assert rejection(make_invoice(None)) == "invoice_amountless"


@pytest.mark.parametrize("currency", ["tb", "bcrt", "tbs"])
def test_invoice_for_another_network_is_refused(currency):
    assert rejection(make_invoice(21_000, currency=currency)) == "invoice_wrong_network"


def test_expired_invoice_is_refused():
    assert rejection(make_invoice(21_000, date=int(time.time()) - 700, expiry=600)) == "invoice_expired"


def test_invoice_expiring_too_soon_is_refused_and_the_margin_is_a_setting():
    request = make_invoice(21_000, expiry=20)
    assert rejection(request) == "invoice_expired"
    assert rejection(request, min_seconds_left=30) == "invoice_expired"
    assert check_invoice(request, amount_msat=21_000, min_seconds_left=10).sats == 21


def test_signature_not_made_by_the_named_payee_is_refused():
    assert rejection(make_invoice(21_000, key=PrivateKey(), payee=PrivateKey())) == "invoice_invalid"
    signer = PrivateKey()
    assert check_invoice(make_invoice(21_000, key=signer, payee=signer), amount_msat=21_000).sats == 21


def test_tampered_or_truncated_or_garbage_invoice_is_refused():
    request = make_invoice(21_000)
    flipped = request[:40] + ("q" if request[40] != "q" else "p") + request[41:]
    for bad in (flipped, request[:-10], "lnbc1garbage", "", "not an invoice", request + "x"):
        assert rejection(bad) == "invoice_invalid"


def test_description_hash_mismatch_is_logged_but_accepted(caplog):
    caplog.set_level(logging.INFO, logger="service.lnurl.invoices")
    plain = make_invoice(21_000)  # a plain description, as many servers send
    assert check_invoice(plain, amount_msat=21_000, metadata=METADATA).sats == 21
    other = make_invoice(21_000, description_hash="ab" * 32)
    assert check_invoice(other, amount_msat=21_000, metadata=METADATA).sats == 21
    assert [r.message for r in caplog.records].count("lnurl_description_hash_mismatch") == 2
    caplog.clear()
    check_invoice(make_invoice(21_000, description_hash=METADATA_HASH), amount_msat=21_000, metadata=METADATA)
    assert "lnurl_description_hash_mismatch" not in [r.message for r in caplog.records]
