"""Redis: the client factory and SplitCache, the hot copy of splits.

Redis is an accelerator, never the truth: every SplitCache operation swallows
redis.RedisError (logged without secrets, counted) so Redis being down never fails a save
or a read; the store then works from Postgres alone.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection
from datetime import datetime

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from service.domain.model import Split
from service.store import keys
from service.store.records import split_from_document, split_to_document

log = logging.getLogger(__name__)


def make_redis(url: str, password: str | None = None, socket_timeout: float = 0.5) -> redis.Redis:
    """A client with short timeouts and no retries: a dead Redis costs one timeout, not several.

    Nothing connects here; the first command does.
    """
    options: dict = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": socket_timeout,
        "retry": Retry(NoBackoff(), 0),
        "retry_on_timeout": False,
        "health_check_interval": 30,
    }
    if password:
        options["password"] = password
    return redis.Redis.from_url(url, **options)


class CacheCounters:
    """Thread-safe counters that /metrics can read (snapshot())."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values = {"hits": 0, "misses": 0, "errors": 0, "writes": 0, "deletes": 0}

    def add(self, name: str, count: int = 1) -> None:
        with self._lock:
            self._values[name] += count

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._values)


class SplitCache:
    """get/set/delete of tip:{hash} documents; errors are counted and logged, never raised."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self.counters = CacheCounters()

    def get(self, payment_hash: str) -> Split | None:
        try:
            raw = self.redis.get(keys.tip(payment_hash))
        except redis.RedisError as exc:
            self._failed("get", exc)
            return None
        if raw is None:
            self.counters.add("misses")
            return None
        try:
            split = split_from_document(raw)
        except (ValueError, KeyError, TypeError) as exc:
            # A corrupt or foreign document is a miss: Postgres has the truth.
            self._failed("decode", exc)
            return None
        if split is None:
            # A document of an older format (format 1 held the merchant key's ciphertext):
            # delete it rather than leave it to its expiry.
            self.counters.add("misses")
            self.delete(payment_hash)
            return None
        self.counters.add("hits")
        return split

    def set(self, split: Split, ttl_seconds: int) -> bool:
        """Stores the split with an expiry (at least one second: Redis never keeps it forever)."""
        try:
            document = split_to_document(split)
            self.redis.set(keys.tip(split.payment_hash), document, ex=max(1, int(ttl_seconds)))
        except redis.RedisError as exc:
            self._failed("set", exc)
            return False
        self.counters.add("writes")
        return True

    def delete(self, payment_hash: str) -> bool:
        return self._delete(keys.tip(payment_hash))

    def forget(self, payment_hashes: Collection[str], recipients: Collection[str] = ()) -> bool:
        """Drops the hot copies of these splits and these recipients' stats in one round trip."""
        names = [keys.tip(h) for h in payment_hashes] + [keys.recipient_stats(r) for r in recipients]
        return self._delete(*names) if names else True

    def ping(self) -> bool:
        """For health checks: True when Redis answers (errors are not counted here)."""
        try:
            return bool(self.redis.ping())
        except redis.RedisError:
            return False

    def _delete(self, *names: str) -> bool:
        try:
            self.redis.delete(*names)
        except redis.RedisError as exc:
            self._failed("delete", exc)
            return False
        self.counters.add("deletes", len(names))
        return True

    def _failed(self, operation: str, exc: Exception) -> None:
        self.counters.add("errors")
        # The exception class only: messages may echo connection URLs (with passwords).
        log.warning("split_cache_error", extra={"operation": operation, "error_type": type(exc).__name__})


def ttl_until(expires_at: datetime, now: datetime, minimum: int = keys.TIP_MIN_TTL_SECONDS) -> int:
    """Seconds until expires_at, but never below minimum (a late payment still needs its copy)."""
    return max(minimum, int((expires_at - now).total_seconds()))

