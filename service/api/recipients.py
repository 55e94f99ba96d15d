"""POST /api/recipients/validate (DESIGN 4): can this recipient be paid, and how much may it take?

The POS page's settings screen asks before a tip recipient is saved; create-invoice asks the same
resolver at sale time. Each call may reach an outside server, so it is rate limited per client
address like create-invoice.
"""

from __future__ import annotations

from flask import Blueprint, jsonify

from service.api.body import json_body
from service.api.fields import MAX_RECIPIENT_CHARS
from service.api.payment_errors import blink_unavailable
from service.api.throttle import client_address
from service.blink import BlinkUnavailable
from service.context import services
from service.errors import BadRequest, TooManyRequests
from service.lnurl import LnurlError

recipients_blueprint = Blueprint("recipients", __name__)


@recipients_blueprint.post("/api/recipients/validate")
def validate_recipient():
    """Whether a tip recipient (or a merchant's payout address) can be paid.
    ---
    post:
      operationId: validateRecipient
      summary: Resolve a Blink username, Lightning Address or LNURL and say what it accepts
      description: "A Lightning Address or LNURL is fetched over https from public addresses only
        (positive answers cached a few minutes); name@blink.sv is the Blink user. Sats limits are
        null for a Blink user."
      tags: [recipients]
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [recipient]
              properties:
                recipient: {type: string, minLength: 1, maxLength: 2000,
                            description: "username, name@domain, lnurl1... or lnurlp://..."}
      responses:
        200:
          description: The recipient can be paid
          content:
            application/json:
              schema:
                type: object
                required: [valid, kind, normalized, minSendableSats, maxSendableSats]
                properties:
                  valid: {type: boolean, enum: [true]}
                  kind: {type: string, enum: [blink, lightning_address, lnurl]}
                  normalized: {type: string}
                  minSendableSats: {type: integer, nullable: true}
                  maxSendableSats: {type: integer, nullable: true}
        400: "recipient_required, recipient_invalid, recipient_unreachable or
          recipient_amount_out_of_range; details.reason says why"
        502: "Blink could not be asked about a Blink username (details.retryable)"
      errors: [413, 415, 429, 504]
    """
    svc = services()
    raw = json_body().get("recipient")
    if not isinstance(raw, str) or not raw.strip() or len(raw) > MAX_RECIPIENT_CHARS:
        raise BadRequest("recipient_required", "Send the recipient to check as a non-empty string.")
    _enforce_rate_limit()
    try:
        resolution = svc.recipients.resolve(raw)
    except LnurlError as error:
        raise BadRequest(error.code, error.message, {"reason": error.reason}) from None
    except BlinkUnavailable as error:
        raise blink_unavailable(error) from None
    return jsonify(resolution.as_json())


def _enforce_rate_limit() -> None:
    svc = services()
    limit = ("recipients-validate:ip", client_address(), svc.config.rate_limit_per_ip_per_minute)
    decision = svc.limiter.hit_all([limit])
    if not decision.allowed:
        raise TooManyRequests(
            "rate_limited", "Too many checks; wait a moment and try again.", decision.retry_after
        )
