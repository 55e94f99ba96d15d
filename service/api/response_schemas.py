"""Marshmallow schemas of the answers whose views build their JSON by hand: health and webhook.

They exist for the OpenAPI document (service/api/openapi.py) and must follow what
service/api/health.py and service/webhooks.py write; tests/test_schemathesis.py checks every
answer against the document, so a drift fails there.
"""

from __future__ import annotations

from marshmallow import Schema, fields, validate


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
