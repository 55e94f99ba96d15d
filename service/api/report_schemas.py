"""Marshmallow schemas of the report answers: the views dump through them (so the answers
have exactly the documented fields) and the OpenAPI document is built from them.

Register REPORT_SCHEMAS under their names (`spec.components.schema(name, schema=...)`): the
view docstrings of service/api/reports.py refer to them by those names.
"""

from __future__ import annotations

from marshmallow import Schema, fields

from service.api.fields import ApiSchema
from service.api.response_schemas import LEG_STATES


class ReportPeriodSchema(ApiSchema):
    from_ = fields.String(attribute="from", metadata={"description": "First local day, YYYY-MM-DD"})
    to = fields.String(metadata={"description": "Last local day (inclusive), YYYY-MM-DD"})
    timezone = fields.String(metadata={"description": "IANA zone the days are counted in"})
    start = fields.String(metadata={"description": "First instant of the period (ISO 8601, UTC)"})
    end = fields.String(metadata={"description": "First instant after the period (ISO 8601, UTC)"})


class SalesTotalsSchema(ApiSchema):
    sales = fields.Integer(metadata={"description": "Completed sales"})
    tippedSales = fields.Integer(metadata={"description": "Completed sales with a tip"})
    invoiceSats = fields.Integer(metadata={"description": "Sats the customers paid"})
    merchantSats = fields.Integer(metadata={"description": "Sats forwarded to the merchant's wallet"})
    tipSats = fields.Integer(metadata={"description": "Sats forwarded to tip recipients"})
    feeSats = fields.Integer(
        metadata={"description": "Routing fees paid out of those sats (Lightning Address payouts)"}
    )


class DaySalesSchema(SalesTotalsSchema):
    date = fields.String(metadata={"description": "Local day, YYYY-MM-DD"})


class DisplayTotalsSchema(ApiSchema):
    currency = fields.String()
    sales = fields.Integer()
    baseAmount = fields.String(metadata={"description": "Decimal text, display currency"})
    tipAmount = fields.String(metadata={"description": "Decimal text, display currency"})


class NotForwardedSchema(ApiSchema):
    sales = fields.Integer()
    invoiceSats = fields.Integer()


class ReportSummarySchema(ApiSchema):
    period = fields.Nested(ReportPeriodSchema)
    totals = fields.Nested(SalesTotalsSchema, metadata={"description": "Completed sales only"})
    displayTotals = fields.List(fields.Nested(DisplayTotalsSchema))
    notForwarded = fields.Dict(
        keys=fields.String(),
        values=fields.Nested(NotForwardedSchema),
        metadata={"description": "Sales not (yet) forwarded, by status (pending, paid, forwarding, ...)"},
    )
    days = fields.List(fields.Nested(DaySalesSchema), metadata={"description": "Every day of the period"})


class DayRecipientTipsSchema(ApiSchema):
    username = fields.String()
    tips = fields.Integer()
    tipSats = fields.Integer()


class RecipientTipsSchema(DayRecipientTipsSchema):
    firstTipAt = fields.String(metadata={"description": "First tipped sale, in the report's zone"})
    lastTipAt = fields.String(metadata={"description": "Last tipped sale, in the report's zone"})


class DayTipsSchema(ApiSchema):
    date = fields.String()
    tips = fields.Integer()
    tipSats = fields.Integer()
    recipients = fields.List(fields.Nested(DayRecipientTipsSchema))


class TipsTotalsSchema(ApiSchema):
    recipients = fields.Integer()
    tips = fields.Integer()
    tipSats = fields.Integer()


class TipsReportSchema(ApiSchema):
    period = fields.Nested(ReportPeriodSchema)
    totals = fields.Nested(TipsTotalsSchema)
    recipients = fields.List(fields.Nested(RecipientTipsSchema), metadata={"description": "Most sats first"})
    days = fields.List(fields.Nested(DayTipsSchema), metadata={"description": "Every day of the period"})


class RecipientStatsSchema(ApiSchema):
    username = fields.String()
    tipCount = fields.Integer()
    totalSats = fields.Integer()
    averageSats = fields.Float()
    largestSats = fields.Integer()
    smallestSats = fields.Integer()
    firstTipAt = fields.String(metadata={"description": "ISO 8601, UTC"})
    lastTipAt = fields.String(metadata={"description": "ISO 8601, UTC"})


class PayoutSchema(ApiSchema):
    """Dumps the documents of service.reports.payouts.local_payout (times in the report's zone)."""

    payment_hash = fields.String(required=True, metadata={"description": "the sale's"})
    created_at = fields.String(
        data_key="saleCreatedAt", required=True, metadata={"description": "the sale's, in the report's zone"}
    )
    sale_status = fields.String(required=True, metadata={"description": "a failed sale may be retried"})
    kind = fields.String(required=True, metadata={"description": "base | tip"})
    recipient = fields.String(required=True, metadata={"description": "merchant wallet id or recipient"})
    sats = fields.Integer(required=True)
    fee_sats = fields.Integer(
        allow_none=True,
        required=True,
        metadata={"description": "routing fee paid out of the leg; null until it succeeded"},
    )
    status = fields.String(required=True, metadata={"description": LEG_STATES})
    attempts = fields.Integer(required=True)
    last_error = fields.String(allow_none=True, required=True)
    next_attempt_at = fields.String(
        allow_none=True,
        required=True,
        metadata={"description": "when the worker tries again; null when it will not by itself"},
    )
    paid_at = fields.String(allow_none=True, required=True)


class PayoutLogSchema(ApiSchema):
    period = fields.Nested(ReportPeriodSchema, required=True)
    status = fields.String(required=True, metadata={"description": "all | open | failed"})
    payouts = fields.List(
        fields.Nested(PayoutSchema), required=True, metadata={"description": "Newest first"}
    )
    next_cursor = fields.String(
        allow_none=True,
        required=True,
        metadata={"description": "pass as cursor for the next page; null on the last page"},
    )


class RetryAcceptedSchema(ApiSchema):
    payment_hash = fields.String(required=True)
    status = fields.String(required=True, metadata={"description": "forwarding: the worker pays it next"})
    legs_reset = fields.Integer(required=True, metadata={"description": "failed legs"})


REPORT_SCHEMAS: dict[str, type[Schema]] = {
    "ReportSummary": ReportSummarySchema,
    "TipsReport": TipsReportSchema,
    "RecipientStats": RecipientStatsSchema,
    "PayoutLog": PayoutLogSchema,
    "RetryAccepted": RetryAcceptedSchema,
}
