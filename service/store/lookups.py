"""Positive answers of the create-invoice checks, cached in Redis for ten minutes.

"This key owns this wallet" is keyed by the key's HMAC fingerprint, never the key itself.
Negative answers are not cached, so a merchant who fixes a setting is not refused for ten
minutes. Redis trouble only costs a Blink call: every method swallows redis errors.
"""

from __future__ import annotations

import logging

import redis

from service.store import keys

log = logging.getLogger(__name__)


class LookupCache:
    def __init__(self, client: redis.Redis) -> None:
        self._redis = client

    def wallet_owner_known(self, fingerprint: str, wallet_id: str) -> bool:
        return self._get(keys.wallet_owner(fingerprint, wallet_id)) is not None

    def remember_wallet_owner(self, fingerprint: str, wallet_id: str) -> None:
        self._set(keys.wallet_owner(fingerprint, wallet_id), "1", keys.WALLET_OWNER_TTL_SECONDS)

    def recipient_wallet(self, username: str) -> str | None:
        return self._get(keys.recipient_wallet(username))

    def remember_recipient_wallet(self, username: str, wallet_id: str) -> None:
        self._set(keys.recipient_wallet(username), wallet_id, keys.RECIPIENT_WALLET_TTL_SECONDS)

    def _get(self, key: str) -> str | None:
        try:
            value = self._redis.get(key)
        except redis.RedisError as exc:
            log.warning("lookup_cache_error", extra={"error_type": type(exc).__name__})
            return None
        return value.decode() if isinstance(value, bytes) else value

    def _set(self, key: str, value: str, ttl_seconds: int) -> None:
        try:
            self._redis.set(key, value, ex=ttl_seconds)
        except redis.RedisError as exc:
            log.warning("lookup_cache_error", extra={"error_type": type(exc).__name__})
