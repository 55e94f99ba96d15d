"""Fixed-window rate limits shared by every instance through Redis (`ratelimit:*` keys).

One INCR + EXPIRE per check in a single round trip. When Redis is unavailable the limiter
lets requests through (and says so in the log): refusing every sale because a cache is down
would hurt merchants more than a burst would.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

from service.store import keys

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    retry_after: int  # seconds until the window resets; 0 when allowed


class RateLimiter:
    def __init__(
        self,
        client: redis.Redis,
        *,
        window_seconds: int = keys.RATE_LIMIT_WINDOW_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = client
        self._window = window_seconds
        self._clock = clock

    def hit(self, scope: str, identity: str, limit: int) -> RateDecision:
        now = self._clock()
        window = int(now // self._window)
        key = keys.rate_limit(scope, identity, window)
        try:
            pipe = self._redis.pipeline(transaction=True)
            pipe.incr(key)
            pipe.expire(key, self._window + 1)
            count, _ = pipe.execute()
        except redis.RedisError as exc:
            log.warning("rate_limit_unavailable", extra={"error_type": type(exc).__name__, "scope": scope})
            return RateDecision(True, 0)
        if count <= limit:
            return RateDecision(True, 0)
        retry_after = max(1, int((window + 1) * self._window - now + 0.999))
        return RateDecision(False, retry_after)
