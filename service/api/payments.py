"""The POS endpoints: create-invoice, forward-with-tips, forward-payment, payment-status.

Views only parse, call one business function and serialise (DESIGN §4 is the contract).
"""

from __future__ import annotations

import hmac
from typing import Any

from flask import Blueprint, jsonify, request

from service.api import presenters
from service.api.payment_errors import raise_api_error
from service.api.requests import json_body
from service.api.schemas import (
    ValidationFailed,
    parse_create_invoice,
    parse_forward_payment,
    parse_forward_with_tips,
)
from service.context import services
from service.domain.errors import MerchantMismatch, PaymentError
from service.domain.normalize import normalize_payment_hash
from service.errors import BadRequest, NotFound, TooManyRequests

payments_blueprint = Blueprint("payments", __name__)


@payments_blueprint.post("/api/blink/create-invoice")
def create_invoice():
    svc = services()
    body = json_body()
    parsed = _validated(parse_create_invoice, body, svc.config.max_invoice_sats)
    _enforce_rate_limits(parsed.merchant_wallet_id)
    try:
        split = svc.invoices.create(parsed)
    except PaymentError as error:
        raise_api_error(error)
    return jsonify({"success": True, "invoice": presenters.invoice(split, parsed, svc.config)})


@payments_blueprint.post("/api/blink/forward-with-tips")
def forward_with_tips():
    svc = services()
    parsed = _validated(parse_forward_with_tips, json_body())
    try:
        outcome = svc.forwarder.forward(
            parsed.payment_hash, source="forward-with-tips", client_total_sats=parsed.client_total_sats
        )
    except PaymentError as error:
        raise_api_error(error)
    return jsonify(presenters.forward_result(outcome))


@payments_blueprint.post("/api/blink/forward-payment")
def forward_payment():
    svc = services()
    parsed = _validated(parse_forward_payment, json_body())
    split = svc.store.get_fresh(parsed.payment_hash)
    if split is None:
        raise NotFound("split_not_found", "No invoice with this payment hash was created here.")
    same_wallet = hmac.compare_digest(split.merchant_wallet_id, parsed.merchant_wallet_id)
    same_key = hmac.compare_digest(
        split.merchant_key_fingerprint, svc.keybox.fingerprint(parsed.merchant_api_key)
    )
    try:
        if not (same_wallet and same_key):
            raise MerchantMismatch("This payment belongs to another merchant wallet or key.")
        outcome = svc.forwarder.forward(parsed.payment_hash, source="forward-payment")
    except PaymentError as error:
        raise_api_error(error)
    return jsonify(presenters.forward_result(outcome))


@payments_blueprint.get("/api/payment-status/<payment_hash>")
def payment_status(payment_hash: str):
    svc = services()
    normalized = normalize_payment_hash(payment_hash)
    if normalized is None:
        raise BadRequest("invalid_payment_hash", "paymentHash must be 64 hexadecimal characters.")
    split = svc.store.get_fresh(normalized)
    if split is None:
        raise NotFound("split_not_found", "No invoice with this payment hash was created here.")
    return jsonify(presenters.payment_status(split))


def _validated(parse, body: Any, *args: Any):
    try:
        return parse(body, *args)
    except ValidationFailed as failure:
        raise BadRequest(failure.code, failure.message, {"fields": failure.fields}) from None


def _enforce_rate_limits(wallet_id: str) -> None:
    svc = services()
    decision = svc.limiter.hit_all(
        [
            ("create-invoice:ip", request.remote_addr or "unknown", svc.config.rate_limit_per_ip_per_minute),
            ("create-invoice:wallet", wallet_id, svc.config.rate_limit_per_wallet_per_minute),
        ]
    )
    if not decision.allowed:
        raise TooManyRequests(
            "rate_limited",
            "Too many invoices requested; wait a moment and try again.",
            decision.retry_after,
            {"scope": decision.scope.removeprefix("create-invoice:")},
        )
