"""Blink's payment webhooks (delivered by Svix): verify, deduplicate, classify, mark paid.

No Flask here: the view in service/api/webhooks.py hands over the raw body and headers.
Verification runs over the RAW bytes (re-serialised JSON would not match the signature).
A verified event only ever marks a split paid; forwarding is the worker's job, so the answer
stays fast and a redelivery can never move money.
"""

from __future__ import annotations

import binascii
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis
from standardwebhooks import Webhook, WebhookVerificationError

from service.domain.errors import SplitNotFound
from service.domain.normalize import normalize_payment_hash
from service.store import keys

log = logging.getLogger(__name__)

# Svix names its headers svix-*; the Standard Webhooks library reads the same values as webhook-*.
_SVIX_TO_STANDARD = {
    "svix-id": "webhook-id",
    "svix-timestamp": "webhook-timestamp",
    "svix-signature": "webhook-signature",
}


class InvalidSignature(Exception):
    """Missing headers, a bad signature or a timestamp more than 5 minutes off."""


@dataclass(frozen=True)
class VerifiedDelivery:
    message_id: str
    payload: Any


@dataclass(frozen=True)
class WebhookResult:
    """What the endpoint answers: either the split marked paid, or why the event was ignored."""

    payment_hash: str | None = None
    ignored: str | None = None

    @property
    def received(self) -> bool | None:
        return None if self.ignored else True

    @property
    def status(self) -> str | None:
        return None if self.ignored else "paid"


class SignatureVerifier:
    """Svix signature check (HMAC-SHA256 over "{id}.{timestamp}.{body}", 5-minute tolerance)."""

    def __init__(self, secret: str) -> None:
        self._webhook = Webhook(secret)

    def verify(self, body: bytes, headers: Mapping[str, str]) -> VerifiedDelivery:
        lowered = {name.lower(): value for name, value in headers.items()}
        standard = {new: lowered.get(old, "") for old, new in _SVIX_TO_STANDARD.items()}
        try:
            self._webhook.verify(body, standard, json_parse=False)
            payload = json.loads(body)
        # ValueError covers malformed base64/signature lists, non-UTF-8 bodies and bad JSON.
        except (WebhookVerificationError, ValueError, binascii.Error) as exc:
            raise InvalidSignature(type(exc).__name__) from None
        return VerifiedDelivery(message_id=standard["webhook-id"], payload=payload)


@dataclass(frozen=True)
class ReceivedPayment:
    payment_hash: str
    wallet_id: str


def classify(payload: Any, pos_wallet_id: str) -> ReceivedPayment | str:
    """The payment this event reports on the POS wallet, or the reason to ignore it."""
    if not isinstance(payload, Mapping):
        return "malformed_event"
    event_type = payload.get("eventType")
    if not isinstance(event_type, str) or not event_type.startswith("receive."):
        return "not_a_receive_event"
    transaction = payload.get("transaction")
    if not isinstance(transaction, Mapping):
        return "malformed_event"
    if str(transaction.get("status", "")).lower() != "success":
        return "not_successful"
    if payload.get("walletId") != pos_wallet_id:
        return "foreign_wallet"
    initiation = transaction.get("initiationVia")
    payment_hash = initiation.get("paymentHash") if isinstance(initiation, Mapping) else None
    payment_hash = normalize_payment_hash(payment_hash) if isinstance(payment_hash, str) else None
    if payment_hash is None:
        return "no_payment_hash"
    return ReceivedPayment(payment_hash=payment_hash, wallet_id=pos_wallet_id)


class WebhookProcessor:
    """Deduplicates deliveries on svix-id and marks the split paid (idempotent in Postgres)."""

    def __init__(self, store, redis_client: redis.Redis, pos_wallet_id: str, *, observer=None) -> None:
        self._store = store
        self._redis = redis_client
        self._pos_wallet_id = pos_wallet_id
        self._observe = observer or (lambda result: None)

    def process(self, delivery: VerifiedDelivery) -> WebhookResult:
        """Raises StoreUnavailable when Postgres is down (Svix then retries the delivery)."""
        first_time = self._remember(delivery.message_id)
        if first_time is False:
            return self._done(WebhookResult(ignored="duplicate_delivery"))
        try:
            result = self._apply(delivery.payload)
        except BaseException:
            # Not processed: forget the id so Svix's retry is handled, not dropped as a duplicate.
            if first_time:
                self._forget(delivery.message_id)
            raise
        return self._done(result)

    def _apply(self, payload: Any) -> WebhookResult:
        received = classify(payload, self._pos_wallet_id)
        if isinstance(received, str):
            return WebhookResult(ignored=received)
        try:
            split = self._store.mark_paid(received.payment_hash, source="webhook")
        except SplitNotFound:
            return WebhookResult(ignored="unknown_payment_hash")
        log.info(
            "webhook_payment_received",
            extra={"payment_hash": split.payment_hash, "status": str(split.status)},
        )
        return WebhookResult(payment_hash=split.payment_hash)

    def _remember(self, message_id: str) -> bool | None:
        """True the first time an id is seen, False for a redelivery, None when Redis is down.

        Without Redis the event is processed again, which is harmless: mark_paid is idempotent.
        """
        try:
            return bool(
                self._redis.set(
                    keys.svix_webhook(message_id), "1", nx=True, ex=keys.WEBHOOK_DEDUP_TTL_SECONDS
                )
            )
        except redis.RedisError as exc:
            log.warning("webhook_dedup_unavailable", extra={"error_type": type(exc).__name__})
            return None

    def _forget(self, message_id: str) -> None:
        try:
            self._redis.delete(keys.svix_webhook(message_id))
        except redis.RedisError as exc:
            log.warning("webhook_dedup_unavailable", extra={"error_type": type(exc).__name__})

    def _done(self, result: WebhookResult) -> WebhookResult:
        self._observe("processed" if result.ignored is None else f"ignored_{result.ignored}")
        if result.ignored is not None:
            log.info("webhook_ignored", extra={"reason": result.ignored})
        return result
