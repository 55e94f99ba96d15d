"""POST /api/blink/webhook: Blink's Svix-signed payment notifications.

Verifies over the raw body, marks the split paid and answers at once; the worker forwards.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from service.api.response_schemas import WebhookResultSchema
from service.context import services
from service.errors import ServiceUnavailable, Unauthorized
from service.webhooks import InvalidSignature, SignatureVerifier, WebhookProcessor

webhooks_blueprint = Blueprint("webhooks", __name__)


@webhooks_blueprint.post("/api/blink/webhook")
def blink_webhook() -> Response:
    """Blink's Svix-signed payment notification: marks the sale paid.
    ---
    post:
      operationId: blinkWebhook
      tags: [webhooks]
      summary: "Blink's Svix-signed payment notification: marks the sale paid"
      description: The worker forwards, so the answer is fast. Verified over the raw body
        (HMAC-SHA256, 5-minute tolerance). A redelivery (same svix-id) is answered 200 and ignored.
      parameters:
        - {in: header, name: svix-id, required: true, schema: {type: string},
           description: the delivery id (the same on every redelivery)}
        - {in: header, name: svix-timestamp, required: true, schema: {type: string},
           description: Unix seconds}
        - {in: header, name: svix-signature, required: true, schema: {type: string},
           description: "space-separated `v1,<base64>` signatures"}
      requestBody: {required: true, content: {application/json: {schema: BlinkWebhook}}}
      responses:
        200:
          description: Processed or deliberately ignored
          content: {application/json: {schema: WebhookResult}}
        503: "webhook_not_configured (no BLINK_WEBHOOK_SECRET), or database_unavailable"
        401: "invalid_signature: the webhook signature is missing, wrong or too old"
      errors: [413]
    """
    svc = services()
    secret = svc.config.blink_webhook_secret
    if not secret:
        raise ServiceUnavailable("webhook_not_configured", "Webhooks are not configured on this service.")
    try:
        delivery = SignatureVerifier(secret).verify(request.get_data(cache=False), request.headers)
    except InvalidSignature:
        svc.metrics.observe_webhook("invalid_signature")
        raise Unauthorized("invalid_signature", "The webhook signature is missing or invalid.") from None
    processor = WebhookProcessor(
        svc.store, svc.redis, svc.config.blinkpos_btc_wallet_id, observer=svc.metrics.observe_webhook
    )
    return jsonify(WebhookResultSchema().dump(processor.process(delivery)))
