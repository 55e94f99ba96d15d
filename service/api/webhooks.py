"""POST /api/blink/webhook: Blink's Svix-signed payment notifications.

Verifies over the raw body, marks the split paid and answers at once; the worker forwards.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from service.context import services
from service.errors import ServiceUnavailable, Unauthorized
from service.webhooks import InvalidSignature, SignatureVerifier, WebhookProcessor

webhooks_blueprint = Blueprint("webhooks", __name__)


@webhooks_blueprint.post("/api/blink/webhook")
def blink_webhook() -> Response:
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
    return jsonify(processor.process(delivery).as_json())
