"""Marshmallow schemas of the API's answers; every view dumps through one, and the OpenAPI
document is built from them. The small dataclasses here are what the POS schemas dump: a
split seen as the POS page sees it (its tip legs with their shares, the forwarding message).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from marshmallow import fields, post_dump, validate

from service.api.fields import ApiSchema, NumberField, ShareField
from service.blink.key_check import POS_KEY_ANSWERS
from service.domain.model import LegKind, LegStatus, Split
from service.payments.forwarding import ForwardOutcome

LEG_STATES = "planned|invoiced|sending|succeeded|failed"


# --- what the POS answers are made of -------------------------------------------------------------


@dataclass(frozen=True)
class TipLeg:
    username: str
    share: Fraction | None
    sats: int
    status: str
    payment_hash: str | None


def tip_legs(split: Split) -> list[TipLeg]:
    """The tip legs in the order of the recipients (the store keeps legs by position)."""
    shares = {recipient.username: recipient.share for recipient in split.tip_recipients}
    return [
        TipLeg(leg.recipient, shares.get(leg.recipient), leg.sats, leg.status, leg.payment_hash)
        for leg in split.legs
        if leg.kind == LegKind.TIP
    ]


@dataclass(frozen=True)
class IssuedInvoice:
    """create-invoice's answer: the split, what the page called the sale, and the POS wallet."""

    split: Split
    currency: str
    pos_wallet_id: str

    @property
    def amount(self) -> int:  # the sale total; the same figure as the invoice's satoshis
        return self.split.invoice_sats

    @property
    def memo(self) -> str:
        return self.split.memo or ""

    @property
    def tip_legs(self) -> list[TipLeg]:
        return tip_legs(self.split)

    @property
    def tip_recipient(self) -> str | None:
        legs = self.tip_legs
        return legs[0].username if legs else None


@dataclass(frozen=True)
class TipResult:
    legs: list[TipLeg]
    total_tip_amount: int

    @property
    def success(self) -> bool:
        return all(leg.status == LegStatus.SUCCEEDED for leg in self.legs)

    @property
    def amounts(self) -> list[int]:
        return [leg.sats for leg in self.legs]

    @property
    def recipient_count(self) -> int:
        return len(self.legs)


@dataclass(frozen=True)
class Forwarded(ForwardOutcome):
    """forward-with-tips' and forward-payment's answer: the outcome, and what the page shows of it."""

    @property
    def message(self) -> str:
        if self.already_processed:
            return "Payment already forwarded"
        return "Payment forwarded with tips" if self.split.has_tip else "Payment forwarded"

    @property
    def details(self) -> Forwarded:
        return self

    @property
    def invoice_hash(self) -> str | None:
        base = next((leg for leg in self.split.legs if leg.kind == LegKind.BASE), None)
        return base.payment_hash if base else None

    @property
    def tip_result(self) -> TipResult | None:
        return TipResult(tip_legs(self.split), self.split.tip_sats) if self.split.has_tip else None

    tip_splitting = tip_result  # the same legs, told as counts and amounts


# --- the POS answers ------------------------------------------------------------------------------


class TipLegSchema(ApiSchema):
    username = fields.String(metadata={"description": "merchant's own key only"})
    share = ShareField(allow_none=True, metadata={"description": "relative weight"})
    sats = fields.Integer(required=True)
    status = fields.String(required=True, metadata={"description": LEG_STATES})
    payment_hash = fields.String(allow_none=True)


class InvoiceSchema(ApiSchema):
    payment_request = fields.String(attribute="split.payment_request", required=True)
    payment_hash = fields.String(attribute="split.payment_hash", required=True)
    satoshis = fields.Integer(
        attribute="split.invoice_sats", required=True, metadata={"description": "invoice amount in sats"}
    )
    amount = fields.Integer(required=True, metadata={"description": "the sale total in sats"})
    currency = fields.String(required=True)
    memo = fields.String(required=True)
    wallet_id = fields.String(
        attribute="pos_wallet_id",
        required=True,
        metadata={"description": "the POS wallet"},
    )
    user_wallet_id = fields.String(
        attribute="split.merchant_wallet_id",
        required=True,
        allow_none=True,
        metadata={"description": "the merchant's wallet; null for a merchant paid at an address"},
    )
    has_tip = fields.Boolean(attribute="split.has_tip", required=True)
    tip_amount = fields.Integer(
        attribute="split.tip_sats",
        required=True,
        metadata={"description": "tip in sats"},
    )
    tip_recipient = fields.String(
        allow_none=True, metadata={"description": "the first tip recipient, if any"}
    )
    tip_recipients = fields.List(fields.Nested(TipLegSchema), attribute="tip_legs", required=True)
    expires_at = fields.DateTime(attribute="split.expires_at", required=True)


class CreateInvoiceResponseSchema(ApiSchema):
    success = fields.Boolean(required=True, dump_default=True)
    invoice = fields.Nested(InvoiceSchema, required=True)


class TipResultSchema(ApiSchema):
    success = fields.Boolean(required=True, metadata={"description": "every tip leg succeeded"})
    total_tip_amount = fields.Integer(required=True)
    recipients = fields.List(fields.Nested(TipLegSchema), attribute="legs", required=True)


class TipSplittingSchema(ApiSchema):
    recipient_count = fields.Integer(required=True)
    amounts = fields.List(fields.Integer(), required=True, metadata={"description": "sats per tip leg"})


class ForwardDetailsSchema(ApiSchema):
    payment_hash = fields.String(attribute="split.payment_hash", required=True)
    total_amount = fields.Integer(
        attribute="split.invoice_sats",
        required=True,
        metadata={"description": "invoice sats"},
    )
    forwarded_amount = fields.Integer(
        attribute="split.base_sats",
        required=True,
        metadata={"description": "base sats for the merchant"},
    )
    user_wallet_id = fields.String(
        attribute="split.merchant_wallet_id",
        allow_none=True,
        metadata={"description": "merchant's own key in X-API-KEY only"},
    )
    payment_status = fields.String(required=True, dump_default="SUCCESS")
    invoice_hash = fields.String(
        allow_none=True, metadata={"description": "the merchant's forwarding invoice"}
    )
    tip_result = fields.Nested(TipResultSchema, allow_none=True)
    tip_splitting = fields.Nested(TipSplittingSchema, allow_none=True)
    already_processed = fields.Boolean(required=True)
    processed_at = fields.DateTime(attribute="split.processed_at", allow_none=True)


class ForwardResponseSchema(ApiSchema):
    success = fields.Boolean(required=True, dump_default=True)
    message = fields.String(required=True)
    details = fields.Nested(ForwardDetailsSchema, required=True)


class LegStatusSchema(ApiSchema):
    kind = fields.String(required=True, metadata={"description": "base | tip"})
    recipient = fields.String(
        metadata={
            "description": "merchant wallet id, Blink username, Lightning Address or LNURL "
            "(merchant's own key only)"
        }
    )
    payout = fields.String(
        metadata={"description": "blink (inside Blink, no fee) | lnurl (merchant's own key only)"}
    )
    sats = fields.Integer(required=True, metadata={"description": "the leg's share of the sale"})
    received_sats = fields.Integer(
        allow_none=True,
        metadata={"description": "what the recipient's invoice is for (the leg minus the fee reserve)"},
    )
    fee_sats = fields.Integer(allow_none=True, metadata={"description": "the routing fee paid, once paid"})
    status = fields.String(required=True, metadata={"description": LEG_STATES})
    payment_hash = fields.String(allow_none=True)
    attempts = fields.Integer(metadata={"description": "merchant's own key only, as lastError"})
    last_error = fields.String(allow_none=True)
    next_attempt_at = fields.DateTime(
        allow_none=True, metadata={"description": "when a failed leg is retried"}
    )


class PaymentStatusSchema(ApiSchema):
    payment_hash = fields.String(required=True)
    status = fields.String(
        required=True, metadata={"description": "pending|paid|forwarding|completed|expired|failed"}
    )
    invoice_sats = fields.Integer(required=True)
    base_sats = fields.Integer(required=True)
    tip_sats = fields.Integer(required=True)
    tip_percent = NumberField(allow_none=True)
    merchant_wallet_id = fields.String(
        allow_none=True,
        metadata={"description": "this, memo, lastError and leg details: merchant's own key only"},
    )
    merchant_lightning_address = fields.String(
        attribute="merchant_payout_address",
        allow_none=True,
        metadata={"description": "where the base is paid when the merchant has no Blink key"},
    )
    display_currency = fields.String(required=True)
    memo = fields.String(allow_none=True)
    created_at = fields.DateTime(required=True)
    expires_at = fields.DateTime(required=True)
    paid_at = fields.DateTime(allow_none=True)
    processed_at = fields.DateTime(allow_none=True)
    last_error = fields.String(allow_none=True)
    legs = fields.List(fields.Nested(LegStatusSchema), required=True)


class ErrorResponseSchema(ApiSchema):
    error = fields.String(required=True)
    code = fields.String(required=True)
    details = fields.Dict(required=True)


# --- operations and webhooks ----------------------------------------------------------------------


class LivenessSchema(ApiSchema):
    status = fields.String(required=True, validate=validate.OneOf(["alive"]))


class ReadinessSchema(ApiSchema):
    status = fields.String(required=True, validate=validate.OneOf(["ready", "not_ready"]))
    reason = fields.String(metadata={"description": "why not ready, e.g. postgres_unreachable"})


class PoolReportSchema(ApiSchema):
    size = fields.Integer(required=True)
    available = fields.Integer(required=True)
    max = fields.Integer(required=True)
    waiting = fields.Integer(required=True)


class DependencyCheckSchema(ApiSchema):
    status = fields.String(required=True, validate=validate.OneOf(["up", "down"]))
    latency_ms = fields.Float(required=True)
    reason = fields.String(metadata={"description": "unreachable | schema_version_mismatch"})


class PostgresCheckSchema(DependencyCheckSchema):
    schema_version = fields.Integer()
    expected_schema_version = fields.Integer()
    pool = fields.Nested(PoolReportSchema)


class BlinkConfigReportSchema(ApiSchema):
    status = fields.String(required=True, validate=validate.OneOf(["configured", "missing"]))
    api_host = fields.String(required=True, allow_none=True)
    pos_wallet_configured = fields.Boolean(required=True)
    pos_api_key_configured = fields.Boolean(required=True)
    webhook_secret_configured = fields.Boolean(required=True)
    pos_key = fields.String(
        required=True,
        validate=validate.OneOf(POS_KEY_ANSWERS),
        metadata={"description": "what Blink last answered for the POS key (checked at start, cached)"},
    )
    pos_key_checked_at = fields.String(required=True, allow_none=True)


class WorkerReportSchema(ApiSchema):
    heartbeat_age_seconds = fields.Float(
        required=True,
        allow_none=True,
        metadata={"description": "seconds since the freshest worker heartbeat; null if none ran"},
    )


class HealthChecksSchema(ApiSchema):
    redis = fields.Nested(DependencyCheckSchema, required=True)
    postgres = fields.Nested(PostgresCheckSchema, required=True)
    blink_config = fields.Nested(BlinkConfigReportSchema, required=True)


class HealthSchema(ApiSchema):
    status = fields.String(required=True, validate=validate.OneOf(["healthy", "degraded", "unhealthy"]))
    timestamp = fields.DateTime(required=True)
    uptime = fields.Float(required=True, metadata={"description": "seconds since this process started"})
    version = fields.String(required=True)
    response_time = fields.Float(required=True, metadata={"description": "ms"})
    checks = fields.Nested(HealthChecksSchema, required=True)
    worker = fields.Nested(WorkerReportSchema, required=True, metadata={"description": "informative only"})


class BlinkWebhookTransactionSchema(ApiSchema):
    status = fields.String(metadata={"description": "lowercase, e.g. success"})
    initiation_via = fields.Dict(metadata={"description": "carries paymentHash for lightning"})
    settlement_amount = fields.Integer(metadata={"description": "sats"})


class BlinkWebhookSchema(ApiSchema):
    """The Svix-delivered body as Blink sends it; the service reads only these fields."""

    account_id = fields.String()
    wallet_id = fields.String()
    event_type = fields.String(metadata={"description": "receive.lightning, receive.intraledger, ..."})
    transaction = fields.Nested(BlinkWebhookTransactionSchema)


class WebhookResultSchema(ApiSchema):
    """Either the split marked paid (received, paymentHash, status) or why the event was ignored."""

    received = fields.Boolean()
    payment_hash = fields.String()
    status = fields.String(validate=validate.OneOf(["paid"]))
    ignored = fields.String(metadata={"description": "duplicate_delivery, unknown_payment_hash, ..."})

    @post_dump
    def _only_what_applies(self, answer: dict, **kwargs: object) -> dict:
        return {key: value for key, value in answer.items() if value is not None}


# What anyone who knows a payment hash (it is in the QR code) may see: states, amounts, times,
# and per leg its kind, sats and state; never the merchant's wallet or address, the memo,
# recipients, how they are paid (or their fees) or error texts (DESIGN §4). The merchant's own
# key in X-API-KEY gets the whole answer.
PUBLIC_LEG_EXCLUDE = (
    "recipient",
    "payout",
    "received_sats",
    "fee_sats",
    "payment_hash",
    "attempts",
    "last_error",
    "next_attempt_at",
)
PUBLIC_STATUS_EXCLUDE = (
    "merchant_wallet_id",
    "merchant_lightning_address",
    "memo",
    "last_error",
    *(f"legs.{name}" for name in PUBLIC_LEG_EXCLUDE),
)
PUBLIC_FORWARD_EXCLUDE = (
    "details.user_wallet_id",
    "details.invoice_hash",
    "details.tip_result.recipients.username",
    "details.tip_result.recipients.share",
    "details.tip_result.recipients.payment_hash",
)
