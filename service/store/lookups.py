"""Positive answers of the create-invoice checks, cached in Redis for ten minutes.

"This key owns this wallet" and "Blink accepts this key" are keyed by the key's HMAC
fingerprint, never the key itself. Negative answers are not cached, so a merchant who fixes a
setting is not refused for ten minutes. Redis trouble only costs a Blink call: every method
swallows redis errors.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import redis

from service.store import keys

log = logging.getLogger(__name__)


class LookupCache:
    def __init__(self, client: redis.Redis) -> None:
        self._redis = client

    def recall(
        self, fingerprint: str, wallet_id: str, usernames: Sequence[str]
    ) -> tuple[bool, dict[str, str]]:
        """Everything create-invoice may have cached, in one round trip: whether the key is
        known to own the wallet, and the recipients' wallets that are known (missing: absent)."""
        names = [keys.wallet_owner(fingerprint, wallet_id), *(keys.recipient_wallet(u) for u in usernames)]
        try:
            values = self._redis.mget(names)
        except redis.RedisError as exc:
            log.warning("lookup_cache_error", extra={"error_type": type(exc).__name__})
            return False, {}
        return values[0] is not None, _known(usernames, values[1:])

    def recipient_wallets(self, usernames: Sequence[str]) -> dict[str, str]:
        """The recipients' wallets that are known, for a sale without a merchant key."""
        if not usernames:
            return {}
        try:
            values = self._redis.mget([keys.recipient_wallet(u) for u in usernames])
        except redis.RedisError as exc:
            log.warning("lookup_cache_error", extra={"error_type": type(exc).__name__})
            return {}
        return _known(usernames, values)

    def key_accepted(self, fingerprint: str) -> bool:
        """Whether Blink accepted the key with this fingerprint within the last ten minutes."""
        try:
            return self._redis.get(keys.merchant_key(fingerprint)) is not None
        except redis.RedisError as exc:
            log.warning("lookup_cache_error", extra={"error_type": type(exc).__name__})
            return False

    def remember_key_accepted(self, fingerprint: str) -> None:
        self._set(keys.merchant_key(fingerprint), "1", keys.MERCHANT_KEY_TTL_SECONDS)

    def remember_wallet_owner(self, fingerprint: str, wallet_id: str) -> None:
        self._set(keys.wallet_owner(fingerprint, wallet_id), "1", keys.WALLET_OWNER_TTL_SECONDS)

    def remember_recipient_wallet(self, username: str, wallet_id: str) -> None:
        self._set(keys.recipient_wallet(username), wallet_id, keys.RECIPIENT_WALLET_TTL_SECONDS)

    def _set(self, key: str, value: str, ttl_seconds: int) -> None:
        try:
            self._redis.set(key, value, ex=ttl_seconds)
        except redis.RedisError as exc:
            log.warning("lookup_cache_error", extra={"error_type": type(exc).__name__})


def _known(usernames: Sequence[str], values: Sequence[object]) -> dict[str, str]:
    return {
        username: value.decode() if isinstance(value, bytes) else str(value)
        for username, value in zip(usernames, values, strict=True)
        if value is not None
    }
