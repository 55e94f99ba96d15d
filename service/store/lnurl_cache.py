"""Positive LNURL pay-request answers, cached in Redis for a few minutes (create-invoice and
recipient validation); the forward path always fetches afresh. Redis trouble costs only a fetch:
every method swallows redis errors."""

from __future__ import annotations

import json
import logging
from typing import Any

import redis

from service.store import keys

log = logging.getLogger(__name__)


class PayRequestCache:
    def __init__(self, client: redis.Redis, ttl_seconds: int) -> None:
        self._redis = client
        self._ttl = ttl_seconds

    def get(self, recipient: str) -> dict[str, Any] | None:
        try:
            raw = self._redis.get(keys.lnurl_pay_request(recipient))
        except redis.RedisError as exc:
            log.warning("lnurl_cache_error", extra={"error_type": type(exc).__name__})
            return None
        if raw is None:
            return None
        try:
            document = json.loads(raw)
        except ValueError:
            return None
        return document if isinstance(document, dict) else None

    def put(self, recipient: str, document: dict[str, Any]) -> None:
        try:
            self._redis.set(keys.lnurl_pay_request(recipient), json.dumps(document), ex=self._ttl)
        except redis.RedisError as exc:
            log.warning("lnurl_cache_error", extra={"error_type": type(exc).__name__})
