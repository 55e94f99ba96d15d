"""Marshmallow schemas of the API's answers; every view dumps through one, and the OpenAPI
document is built from them. The small dataclasses here are what the POS schemas dump: a
split seen as the POS page sees it (its tip legs with their shares, the forwarding message).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from marshmallow import Schema, fields, post_dump, validate

from service.api.fields import NumberField, ShareField
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


class TipLegSchema(Schema):
    username = fields.String(metadata={"description": "merchant's own key only"})
    share = ShareField(allow_none=True, metadata={"description": "relative weight"})
    sats = fields.Integer(required=True)
    status = fields.String(required=True, metadata={"description": LEG_STATES})
    payment_hash = fields.String(data_key="paymentHash", allow_none=True)


class InvoiceSchema(Schema):
    payment_request = fields.String(
        attribute="split.payment_request", data_key="paymentRequest", required=True
    )
    payment_hash = fields.String(attribute="split.payment_hash", data_key="paymentHash", required=True)
    satoshis = fields.Integer(
        attribute="split.invoice_sats", required=True, metadata={"description": "invoice amount in sats"}
    )
    amount = fields.Integer(required=True, metadata={"description": "the sale total in sats"})
    currency = fields.String(required=True)
    memo = fields.String(required=True)
    wallet_id = fields.String(
        attribute="pos_wallet_id",
        data_key="walletId",
        required=True,
        metadata={"description": "the POS wallet"},
    )
    user_wallet_id = fields.String(
        attribute="split.merchant_wallet_id",
        data_key="userWalletId",
        required=True,
        allow_none=True,
        metadata={"description": "the merchant's wallet; null for a merchant paid at an address"},
    )
    has_tip = fields.Boolean(attribute="split.has_tip", data_key="hasTip", required=True)
    tip_amount = fields.Integer(
        attribute="split.tip_sats",
        data_key="tipAmount",
        required=True,
        metadata={"description": "tip in sats"},
    )
    tip_recipient = fields.String(
        data_key="tipRecipient", allow_none=True, metadata={"description": "the first tip recipient, if any"}
    )
    tip_recipients = fields.List(
        fields.Nested(TipLegSchema), attribute="tip_legs", data_key="tipRecipients", required=True
    )
    expires_at = fields.DateTime(attribute="split.expires_at", data_key="expiresAt", required=True)


class CreateInvoiceResponseSchema(Schema):
    success = fields.Boolean(required=True, dump_default=True)
    invoice = fields.Nested(InvoiceSchema, required=True)


class TipResultSchema(Schema):
    success = fields.Boolean(required=True, metadata={"description": "every tip leg succeeded"})
    total_tip_amount = fields.Integer(data_key="totalTipAmount", required=True)
    recipients = fields.List(fields.Nested(TipLegSchema), attribute="legs", required=True)


class TipSplittingSchema(Schema):
    recipient_count = fields.Integer(data_key="recipientCount", required=True)
    amounts = fields.List(fields.Integer(), required=True, metadata={"description": "sats per tip leg"})


class ForwardDetailsSchema(Schema):
    payment_hash = fields.String(attribute="split.payment_hash", data_key="paymentHash", required=True)
    total_amount = fields.Integer(
        attribute="split.invoice_sats",
        data_key="totalAmount",
        required=True,
        metadata={"description": "invoice sats"},
    )
    forwarded_amount = fields.Integer(
        attribute="split.base_sats",
        data_key="forwardedAmount",
        required=True,
        metadata={"description": "base sats for the merchant"},
    )
    user_wallet_id = fields.String(
        attribute="split.merchant_wallet_id",
        data_key="userWalletId",
        allow_none=True,
        metadata={"description": "merchant's own key in X-API-KEY only"},
    )
    payment_status = fields.String(data_key="paymentStatus", required=True, dump_default="SUCCESS")
    invoice_hash = fields.String(
        data_key="invoiceHash", allow_none=True, metadata={"description": "the merchant's forwarding invoice"}
    )
    tip_result = fields.Nested(TipResultSchema, data_key="tipResult", allow_none=True)
    tip_splitting = fields.Nested(TipSplittingSchema, data_key="tipSplitting", allow_none=True)
    already_processed = fields.Boolean(data_key="alreadyProcessed", required=True)
    processed_at = fields.DateTime(attribute="split.processed_at", data_key="processedAt", allow_none=True)


class ForwardResponseSchema(Schema):
    success = fields.Boolean(required=True, dump_default=True)
    message = fields.String(required=True)
    details = fields.Nested(ForwardDetailsSchema, required=True)


class LegStatusSchema(Schema):
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
        data_key="receivedSats",
        allow_none=True,
        metadata={"description": "what the recipient's invoice is for (the leg minus the fee reserve)"},
    )
    fee_sats = fields.Integer(
        data_key="feeSats", allow_none=True, metadata={"description": "the routing fee paid, once paid"}
    )
    status = fields.String(required=True, metadata={"description": LEG_STATES})
    payment_hash = fields.String(data_key="paymentHash", allow_none=True)
    attempts = fields.Integer(metadata={"description": "merchant's own key only, as lastError"})
    last_error = fields.String(data_key="lastError", allow_none=True)
    next_attempt_at = fields.DateTime(
        data_key="nextAttemptAt", allow_none=True, metadata={"description": "when a failed leg is retried"}
    )


class PaymentStatusSchema(Schema):
    payment_hash = fields.String(data_key="paymentHash", required=True)
    status = fields.String(
        required=True, metadata={"description": "pending|paid|forwarding|completed|expired|failed"}
    )
    invoice_sats = fields.Integer(data_key="invoiceSats", required=True)
    base_sats = fields.Integer(data_key="baseSats", required=True)
    tip_sats = fields.Integer(data_key="tipSats", required=True)
    tip_percent = NumberField(data_key="tipPercent", allow_none=True)
    merchant_wallet_id = fields.String(
        data_key="merchantWalletId",
        allow_none=True,
        metadata={"description": "this, memo, lastError and leg details: merchant's own key only"},
    )
    merchant_lightning_address = fields.String(
        attribute="merchant_payout_address",
        data_key="merchantLightningAddress",
        allow_none=True,
        metadata={"description": "where the base is paid when the merchant has no Blink key"},
    )
    display_currency = fields.String(data_key="displayCurrency", required=True)
    memo = fields.String(allow_none=True)
    created_at = fields.DateTime(data_key="createdAt", required=True)
    expires_at = fields.DateTime(data_key="expiresAt", required=True)
    paid_at = fields.DateTime(data_key="paidAt", allow_none=True)
    processed_at = fields.DateTime(data_key="processedAt", allow_none=True)
    last_error = fields.String(data_key="lastError", allow_none=True)
    legs = fields.List(fields.Nested(LegStatusSchema), required=True)


class ErrorResponseSchema(Schema):
    error = fields.String(required=True)
    code = fields.String(required=True)
    details = fields.Dict(required=True)


# --- operations and webhooks ----------------------------------------------------------------------

class LivenessSchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(["alive"]))


class ReadinessSchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(["ready", "not_ready"]))
    reason = fields.String(metadata={"description": "why not ready, e.g. postgres_unreachable"})


class PoolReportSchema(Schema):
    size = fields.Integer(required=True)
    available = fields.Integer(required=True)
    max = fields.Integer(required=True)
    waiting = fields.Integer(required=True)


class DependencyCheckSchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(["up", "down"]))
    latency_ms = fields.Float(data_key="latencyMs", required=True)
    reason = fields.String(metadata={"description": "unreachable | schema_version_mismatch"})


class PostgresCheckSchema(DependencyCheckSchema):
    schema_version = fields.Integer(data_key="schemaVersion")
    expected_schema_version = fields.Integer(data_key="expectedSchemaVersion")
    pool = fields.Nested(PoolReportSchema)


class BlinkConfigReportSchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(["configured", "missing"]))
    api_host = fields.String(data_key="apiHost", required=True, allow_none=True)
    pos_wallet_configured = fields.Boolean(data_key="posWalletConfigured", required=True)
    pos_api_key_configured = fields.Boolean(data_key="posApiKeyConfigured", required=True)
    webhook_secret_configured = fields.Boolean(data_key="webhookSecretConfigured", required=True)
    pos_key = fields.String(
        data_key="posKey",
        required=True,
        validate=validate.OneOf(POS_KEY_ANSWERS),
        metadata={"description": "what Blink last answered for the POS key (checked at start, cached)"},
    )
    pos_key_checked_at = fields.String(data_key="posKeyCheckedAt", required=True, allow_none=True)


class WorkerReportSchema(Schema):
    heartbeat_age_seconds = fields.Float(
        data_key="heartbeatAgeSeconds",
        required=True,
        allow_none=True,
        metadata={"description": "seconds since the freshest worker heartbeat; null if none ran"},
    )


class HealthChecksSchema(Schema):
    redis = fields.Nested(DependencyCheckSchema, required=True)
    postgres = fields.Nested(PostgresCheckSchema, required=True)
    blink_config = fields.Nested(BlinkConfigReportSchema, data_key="blinkConfig", required=True)


class HealthSchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(["healthy", "degraded", "unhealthy"]))
    timestamp = fields.DateTime(required=True)
    uptime = fields.Float(required=True, metadata={"description": "seconds since this process started"})
    version = fields.String(required=True)
    response_time = fields.Float(data_key="responseTime", required=True, metadata={"description": "ms"})
    checks = fields.Nested(HealthChecksSchema, required=True)
    worker = fields.Nested(WorkerReportSchema, required=True, metadata={"description": "informative only"})


class BlinkWebhookTransactionSchema(Schema):
    status = fields.String(metadata={"description": "lowercase, e.g. success"})
    initiation_via = fields.Dict(
        data_key="initiationVia", metadata={"description": "carries paymentHash for lightning"}
    )
    settlement_amount = fields.Integer(data_key="settlementAmount", metadata={"description": "sats"})


class BlinkWebhookSchema(Schema):
    """The Svix-delivered body as Blink sends it; the service reads only these fields."""

    account_id = fields.String(data_key="accountId")
    wallet_id = fields.String(data_key="walletId")
    event_type = fields.String(
        data_key="eventType", metadata={"description": "receive.lightning, receive.intraledger, ..."}
    )
    transaction = fields.Nested(BlinkWebhookTransactionSchema)


class WebhookResultSchema(Schema):
    """Either the split marked paid (received, paymentHash, status) or why the event was ignored."""

    received = fields.Boolean()
    payment_hash = fields.String(data_key="paymentHash")
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

