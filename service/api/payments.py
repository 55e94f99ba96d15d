"""The POS endpoints: create-invoice, forward-with-tips, forward-payment, payment-status.

Each view parses with its request schema, calls one business function and dumps through its
response schema (DESIGN §4 is the contract); its docstring is its OpenAPI operation.
"""

from __future__ import annotations

import dataclasses

from flask import Blueprint, jsonify, request

from service.api.body import json_body
from service.api.fields import shared_schema
from service.api.payment_errors import payment_error_response
from service.api.request_schemas import ForwardPaymentSchema, ForwardWithTipsSchema, PaymentHashPathSchema
from service.api.response_schemas import (
    PUBLIC_FORWARD_EXCLUDE,
    PUBLIC_STATUS_EXCLUDE,
    CreateInvoiceResponseSchema,
    Forwarded,
    ForwardResponseSchema,
    IssuedInvoice,
    PaymentStatusSchema,
)
from service.api.sale_request import CreateInvoiceSchema
from service.api.throttle import (
    API_KEY_HEADER,
    NO_STORE,
    client_address,
    count_failed_auth,
    enforce_rate_limits,
    is_merchant_of,
    refuse_if_failing_auth,
)
from service.context import services
from service.domain.errors import (
    InvalidMerchantKey,
    MerchantKeyCannotRead,
    MerchantMismatch,
    MerchantWalletMismatch,
    PaymentError,
)
from service.domain.profiles import UnknownSplitProfile
from service.errors import NotFound
from service.payments.fallback import forward_for_merchant
from service.payments.inputs import InvoiceRequest

payments_blueprint = Blueprint("payments", __name__)
payments_blueprint.register_error_handler(PaymentError, payment_error_response)

# create-invoice refusals that mean the key was not verified for the wallet it named.
_KEY_CHECK_FAILURES = (InvalidMerchantKey, MerchantKeyCannotRead, MerchantWalletMismatch)


@payments_blueprint.post("/api/blink/create-invoice")
def create_invoice():
    """Issue a Lightning invoice for a sale, with its base and tip split planned.
    ---
    post:
      operationId: createInvoice
      tags: [pos]
      summary: Issue a Lightning invoice for a sale, with its base and tip split planned
      description: "The invoice is issued on the POS wallet. Base = baseAmount (or amount - tipAmount);
        tip = amount - base; a tipAmount more than 1 sat off is refused. The API key is never echoed.
        A recipient is a Blink username, a Lightning Address or an LNURL; each address is resolved
        now and must accept its share minus the fee reserve. A merchant without a Blink key sends
        merchantLightningAddress instead of apiKey and userWalletId."
      requestBody: {required: true, content: {application/json: {schema: CreateInvoiceRequest}}}
      responses:
        200: {description: The invoice, content: {application/json: {schema: CreateInvoiceResponse}}}
        400: "The body broke a rule (`code`: amount_required, invalid_amount, amount_too_large,
          api_key_required, wallet_id_required, merchant_destination_conflict, tip_amount_mismatch,
          tip_recipient_required, invalid_username, invalid_tip_recipients, invalid_memo,
          unknown_tip_recipient, invalid_merchant_api_key, merchant_key_cannot_read,
          merchant_wallet_mismatch, tip_recipient_is_pos_wallet, unknown_split_profile,
          split_profile_with_tip_recipients, recipient_invalid, recipient_unreachable,
          recipient_amount_out_of_range (details.recipient names it), ...)"
      errors: [413, 415, 429, 502, 503, 504]
    """
    svc = services()
    sale = shared_schema(CreateInvoiceSchema, max_invoice_sats=svc.config.max_invoice_sats).parse(json_body())
    refuse_if_failing_auth()
    _limit_invoices("ip", client_address(), svc.config.rate_limit_per_ip_per_minute)
    sale = _with_profile_recipients(sale)
    try:
        # The wallet's limit counts only requests whose key was verified for that wallet, so
        # wrong keys naming a merchant's wallet cannot use up that merchant's allowance; a
        # merchant paid at an address is limited by its normalised address.
        split = svc.invoices.create(
            sale,
            admit_wallet=lambda identity: _limit_invoices(
                "wallet", _merchant_bucket(sale, identity), svc.config.rate_limit_per_wallet_per_minute
            ),
        )
    except _KEY_CHECK_FAILURES:
        count_failed_auth()
        raise
    invoice = IssuedInvoice(split, sale.currency, svc.config.blinkpos_btc_wallet_id)
    return jsonify(shared_schema(CreateInvoiceResponseSchema).dump({"invoice": invoice}))


@payments_blueprint.post("/api/blink/forward-with-tips")
def forward_with_tips():
    """Forward a paid invoice's base to the merchant and its tips, exactly once.
    ---
    post:
      operationId: forwardWithTips
      tags: [pos]
      summary: Forward a paid invoice's base to the merchant and its tips, exactly once
      description: "Amounts come from the stored invoice, never from the request. A repeat call after
        completion answers 200 with alreadyProcessed: true. Without the merchant's own key in
        X-API-KEY the answer names no wallet and no recipient."
      parameters: [merchant_view]
      requestBody: {required: true, content: {application/json: {schema: ForwardWithTipsRequest}}}
      responses:
        200:
          description: Forwarded (or already forwarded)
          content: {application/json: {schema: ForwardResponse}}
      errors: [400, 404, 409, 413, 415, 429, 502, 503, 504]
    """
    svc = services()
    body_schema = shared_schema(ForwardWithTipsSchema, max_invoice_sats=svc.config.max_invoice_sats)
    asked = body_schema.parse(json_body())
    enforce_rate_limits(
        "forward",
        [
            ("ip", client_address(), svc.config.rate_limit_forward_per_ip_per_minute),
            ("payment-hash", asked.payment_hash, svc.config.rate_limit_forward_per_hash_per_minute),
        ],
        "Too many forwarding requests; wait a moment and try again.",
    )
    if request.headers.get(API_KEY_HEADER):
        refuse_if_failing_auth()  # before anything moves, not after
    outcome = svc.forwarder.forward(
        asked.payment_hash, source="forward-with-tips", client_total_sats=asked.client_total_sats
    )
    full = is_merchant_of(outcome.split.merchant_key_fingerprint)
    schema = shared_schema(ForwardResponseSchema, exclude=() if full else PUBLIC_FORWARD_EXCLUDE)
    return jsonify(schema.dump(Forwarded(outcome.split, outcome.already_processed))), 200, NO_STORE


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
        403: "merchant_mismatch: not this sale's merchant; merchant_key_not_applicable: the sale
          pays its merchant at a Lightning Address and has no merchant key"
      errors: [404, 409, 413, 415, 429, 502, 503, 504]
    """
    svc = services()
    asked = shared_schema(ForwardPaymentSchema).parse(json_body())
    refuse_if_failing_auth()
    try:
        outcome = forward_for_merchant(svc.forwarder, svc.store, svc.fingerprints.matches, asked)
    except MerchantMismatch:
        count_failed_auth()
        raise
    answer = shared_schema(ForwardResponseSchema).dump(Forwarded(outcome.split, outcome.already_processed))
    return jsonify(answer), 200, NO_STORE


@payments_blueprint.get("/api/payment-status/<payment_hash>")
def payment_status(payment_hash: str):
    """A sale's state, amounts, timestamps and legs (no secrets).
    ---
    get:
      operationId: paymentStatus
      tags: [pos]
      summary: A sale's state, amounts, timestamps and legs (no secrets)
      description: "To anyone: states, amounts, times, and per leg its kind, sats and state. With the
        merchant's own key in X-API-KEY: also the wallet, memo, recipients, attempts and errors."
      parameters: [payment_hash, merchant_view]
      responses:
        200: {description: The sale, content: {application/json: {schema: PaymentStatus}}}
        400: "invalid_payment_hash: not 64 hexadecimal characters"
      errors: [404, 429, 503]
    """
    svc = services()
    split = svc.store.get_fresh(shared_schema(PaymentHashPathSchema).parse({"payment_hash": payment_hash}))
    if split is None:
        raise NotFound("split_not_found", "No invoice with this payment hash was created here.")
    full = is_merchant_of(split.merchant_key_fingerprint)
    schema = shared_schema(PaymentStatusSchema, exclude=() if full else PUBLIC_STATUS_EXCLUDE)
    return jsonify(schema.dump(split)), 200, NO_STORE


def _with_profile_recipients(sale: InvoiceRequest) -> InvoiceRequest:
    """The sale with its split profile's recipients copied in: later edits never reach it."""
    if sale.split_profile_id is None:
        return sale
    svc = services()
    fingerprints = svc.fingerprints.candidates(sale.merchant_api_key)
    profile = svc.profiles.find(fingerprints, sale.split_profile_id)
    if profile is None:
        raise UnknownSplitProfile(
            "splitProfileId names no split profile made with this apiKey (or it was deleted).",
            details={"splitProfileId": sale.split_profile_id},
        )
    return dataclasses.replace(sale, tip_recipients=profile.recipients)


def _merchant_bucket(sale: InvoiceRequest, identity: str) -> str:
    """A keyed merchant's allowance is its wallet's, spent only by whoever holds the key. Anyone
    may name a payout address, so its allowance is per client address too: a stranger's flood
    spends the stranger's share, never the merchant's own."""
    if sale.merchant_payout_address is None:
        return identity
    return f"{identity} from {client_address()}"


def _limit_invoices(scope: str, identity: str, limit: int) -> None:
    enforce_rate_limits(
        "create-invoice",
        [(scope, identity, limit)],
        "Too many invoices requested; wait a moment and try again.",
    )
