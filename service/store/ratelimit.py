"""Fixed-window rate limits shared by every instance through Redis (`ratelimit:*` keys).

One INCR + EXPIRE per check in a single round trip. When Redis is unavailable the limiter
lets requests through (and says so in the log): refusing every sale because a cache is down
would hurt merchants more than a burst would.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import redis

from service.store import keys

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    retry_after: int  # seconds until the window resets; 0 when allowed
    scope: str | None = None  # the first limit that refused


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

    def check(self, scope: str, identity: str, limit: int) -> RateDecision:
        """Whether identity has already used up limit in this window; counts nothing."""
        now = self._clock()
        window = int(now // self._window)
        try:
            count = int(self._redis.get(keys.rate_limit(scope, identity, window)) or 0)
        except redis.RedisError as exc:
            log.warning("rate_limit_unavailable", extra={"error_type": type(exc).__name__, "scope": scope})
            return RateDecision(True, 0)
        if count < limit:
            return RateDecision(True, 0)
        return RateDecision(False, self._retry_after(window, now), scope)

    def hit_all(self, checks: Sequence[tuple[str, str, int]]) -> RateDecision:
        """Counts one hit on every (scope, identity, limit) in one round trip; refused if any is over."""
        now = self._clock()
        window = int(now // self._window)
        try:
            pipe = self._redis.pipeline(transaction=True)
            for scope, identity, _limit in checks:
                key = keys.rate_limit(scope, identity, window)
                pipe.incr(key)
                pipe.expire(key, self._window + 1)
            replies = pipe.execute()
        except redis.RedisError as exc:
            scopes = ",".join(scope for scope, _identity, _limit in checks)
            log.warning("rate_limit_unavailable", extra={"error_type": type(exc).__name__, "scope": scopes})
            return RateDecision(True, 0)
        counts = replies[0::2]
        refused = [scope for count, (scope, _id, limit) in zip(counts, checks, strict=True) if count > limit]
        if not refused:
            return RateDecision(True, 0)
        return RateDecision(False, self._retry_after(window, now), refused[0])

    def _retry_after(self, window: int, now: float) -> int:
        return max(1, int((window + 1) * self._window - now + 0.999))
