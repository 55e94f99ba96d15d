"""The Redis fast-path lock on forwarding (`lock:payment:{hash}`, SET NX with an expiry).

It only turns most duplicate forward calls away cheaply; the Postgres claim is the real guard.
So when Redis is down the lock answers "not known" (None) and the caller goes on to the claim.
"""

from __future__ import annotations

import logging
import secrets

import redis

from service.store import keys

log = logging.getLogger(__name__)

# Deletes the lock only if it still holds our token, so an expired-and-retaken lock survives.
_RELEASE_SCRIPT = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""


class PaymentLocks:
    def __init__(self, client: redis.Redis, ttl_seconds: int = keys.PAYMENT_LOCK_TTL_SECONDS) -> None:
        self._redis = client
        self._ttl = ttl_seconds
        self._release = client.register_script(_RELEASE_SCRIPT)

    def acquire(self, payment_hash: str) -> str | bool | None:
        """A token when acquired, False when another holder has it, None when Redis is unavailable."""
        token = secrets.token_hex(8)
        try:
            acquired = self._redis.set(keys.payment_lock(payment_hash), token, nx=True, ex=self._ttl)
        except redis.RedisError as exc:
            log.warning("payment_lock_unavailable", extra={"error_type": type(exc).__name__})
            return None
        return token if acquired else False

    def release(self, payment_hash: str, token: str) -> None:
        try:
            self._release(keys=[keys.payment_lock(payment_hash)], args=[token])
        except redis.RedisError as exc:
            # The lock expires on its own; the claim in Postgres has already been settled.
            log.warning("payment_lock_release_failed", extra={"error_type": type(exc).__name__})
