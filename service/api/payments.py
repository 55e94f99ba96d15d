"""The POS endpoints: create-invoice, forward-with-tips, forward-payment, payment-status.

Each view parses with its request schema, calls one business function and dumps through its
response schema (DESIGN §4 is the contract); its docstring is its OpenAPI operation.
"""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from service.api import request_schemas as parse
from service.api.body import json_body
from service.api.payment_errors import payment_error_response
from service.api.response_schemas import (
    CreateInvoiceResponseSchema,
    Forwarded,
    ForwardResponseSchema,
    IssuedInvoice,
    PaymentStatusSchema,
)
from service.context import services
from service.domain.errors import PaymentError
from service.errors import NotFound, TooManyRequests
from service.payments.fallback import forward_for_merchant

payments_blueprint = Blueprint("payments", __name__)
payments_blueprint.register_error_handler(PaymentError, payment_error_response)


@payments_blueprint.post("/api/blink/create-invoice")
def create_invoice():
    """Issue a Lightning invoice for a sale, with its base and tip split planned.
    ---
    post:
      operationId: createInvoice
      tags: [pos]
      summary: Issue a Lightning invoice for a sale, with its base and tip split planned
      description: The invoice is issued on the POS wallet. Base = baseAmount (or amount - tipAmount);
        tip = amount - base; a tipAmount more than 1 sat off is refused. The API key is never echoed.
      requestBody: {required: true, content: {application/json: {schema: CreateInvoiceRequest}}}
      responses:
        200: {description: The invoice, content: {application/json: {schema: CreateInvoiceResponse}}}
        400: "The body broke a rule (`code`: amount_required, invalid_amount, amount_too_large,
          api_key_required, wallet_id_required, tip_amount_mismatch, tip_recipient_required,
          invalid_username, invalid_tip_recipients, invalid_memo, unknown_tip_recipient,
          invalid_merchant_api_key, merchant_wallet_mismatch, ...)"
        413:
        415:
        429:
        502:
        503:
        504:
    """
    svc = services()
    sale = parse.create_invoice_schema(svc.config.max_invoice_sats).parse(json_body())
    _enforce_rate_limits(sale.merchant_wallet_id)
    split = svc.invoices.create(sale)
    invoice = IssuedInvoice(split, sale.currency, svc.config.blinkpos_btc_wallet_id)
    return jsonify(CreateInvoiceResponseSchema().dump({"invoice": invoice}))


@payments_blueprint.post("/api/blink/forward-with-tips")
def forward_with_tips():
    """Forward a paid invoice's base to the merchant and its tips, exactly once.
    ---
    post:
      operationId: forwardWithTips
      tags: [pos]
      summary: Forward a paid invoice's base to the merchant and its tips, exactly once
      description: "Amounts come from the stored invoice, never from the request. A repeat call after
        completion answers 200 with alreadyProcessed: true."
      requestBody: {required: true, content: {application/json: {schema: ForwardWithTipsRequest}}}
      responses:
        200:
          description: Forwarded (or already forwarded)
          content: {application/json: {schema: ForwardResponse}}
        400:
        404:
        409:
        413:
        415:
        502:
        503:
        504:
    """
    svc = services()
    asked = parse.forward_with_tips_schema(svc.config.max_invoice_sats).parse(json_body())
    outcome = svc.forwarder.forward(
        asked.payment_hash, source="forward-with-tips", client_total_sats=asked.client_total_sats
    )
    return jsonify(ForwardResponseSchema().dump(Forwarded(outcome.split, outcome.already_processed)))


@payments_blueprint.post("/api/blink/forward-payment")
def forward_payment():
    """The POS page's fallback forward, checked against the merchant that created the invoice.
    ---
    post:
      operationId: forwardPayment
      tags: [pos]
      summary: "The POS page's fallback forward: the same exactly-once forwarding, checked against
        the merchant that created the invoice"
      requestBody: {required: true, content: {application/json: {schema: ForwardPaymentRequest}}}
      responses:
        200:
          description: Forwarded (or already forwarded)
          content: {application/json: {schema: ForwardResponse}}
        400: "The body broke a rule (`code`: payment_hash_required, invalid_payment_hash,
          api_key_required, wallet_id_required, ...)"
        403:
        404:
        409:
        413:
        415:
        502:
        503:
        504:
    """
    svc = services()
    asked = parse.forward_payment_schema().parse(json_body())
    outcome = forward_for_merchant(svc.forwarder, svc.store, svc.keybox.fingerprint, asked)
    return jsonify(ForwardResponseSchema().dump(Forwarded(outcome.split, outcome.already_processed)))


@payments_blueprint.get("/api/payment-status/<payment_hash>")
def payment_status(payment_hash: str):
    """A sale's state, amounts, timestamps and legs (no secrets).
    ---
    get:
      operationId: paymentStatus
      tags: [pos]
      summary: A sale's state, amounts, timestamps and legs (no secrets)
      parameters: [{in: path, schema: PaymentHashPathSchema}]
      responses:
        200: {description: The sale, content: {application/json: {schema: PaymentStatus}}}
        400: "invalid_payment_hash: not 64 hexadecimal characters"
        404:
        503:
    """
    svc = services()
    split = svc.store.get_fresh(parse.payment_hash_path_schema().parse({"payment_hash": payment_hash}))
    if split is None:
        raise NotFound("split_not_found", "No invoice with this payment hash was created here.")
    return jsonify(PaymentStatusSchema().dump(split))


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
