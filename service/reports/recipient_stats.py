"""Public totals of one tip recipient, read through the stats:recipient:{username} cache.

Cache-aside: Redis first, then Postgres (tip_recipients_stats, via SplitStore.recipient_stats)
and the answer is cached for RECIPIENT_STATS_TTL_SECONDS. SplitStore.mark_legs_succeeded drops
the key when a tip to that recipient is paid, so the next read sees the new tip; if Redis is
down at that moment, the TTL bounds how long the old totals can be served. Redis errors never
fail a read. Unknown recipients are not cached (the answer is a cheap primary-key miss).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from decimal import Decimal
from typing import Any

import redis

from service.domain.normalize import normalize_username
from service.reports.errors import InvalidUsername
from service.store import keys

log = logging.getLogger(__name__)

StatsLoader = Callable[[str], dict[str, Any] | None]


@dataclass(frozen=True)
class StatsLookup:
    stats: dict[str, Any] | None
    cache_hit: bool


def stats_document(row: dict[str, Any]) -> dict[str, Any]:
    """The public JSON shape of a tip_recipients_stats row."""
    average: Decimal = row["average_sats"]
    return {
        "username": row["username"],
        "tipCount": int(row["tip_count"]),
        "totalSats": int(row["total_sats"]),
        # Display only, never money: two decimals are enough.
        "averageSats": float(round(average, 2)),
        "largestSats": int(row["largest_sats"]),
        "smallestSats": int(row["smallest_sats"]),
        "firstTipAt": row["first_tip_at"].astimezone(UTC).isoformat(),
        "lastTipAt": row["last_tip_at"].astimezone(UTC).isoformat(),
    }


class RecipientStats:
    def __init__(self, load: StatsLoader, client: redis.Redis) -> None:
        self._load = load
        self._redis = client

    def lookup(self, raw_username: str) -> StatsLookup:
        username = normalize_username(raw_username)
        if username is None:
            raise InvalidUsername("Not a Blink username (3 to 50 of a-z, 0-9 and _).")
        key = keys.recipient_stats(username)
        cached = self._cached(key)
        if cached is not None:
            return StatsLookup(cached, cache_hit=True)
        row = self._load(username)
        if row is None:
            return StatsLookup(None, cache_hit=False)
        document = stats_document(row)
        self._store(key, document)
        return StatsLookup(document, cache_hit=False)

    def _cached(self, key: str) -> dict[str, Any] | None:
        try:
            raw = self._redis.get(key)
        except redis.RedisError as exc:
            _cache_failed("get", exc)
            return None
        if raw is None:
            return None
        try:
            document = json.loads(raw)
        except ValueError:
            return None  # a corrupt entry is a miss; the next write replaces it
        return document if isinstance(document, dict) else None

    def _store(self, key: str, document: dict[str, Any]) -> None:
        try:
            self._redis.set(key, json.dumps(document), ex=keys.RECIPIENT_STATS_TTL_SECONDS)
        except redis.RedisError as exc:
            _cache_failed("set", exc)


def _cache_failed(operation: str, exc: Exception) -> None:
    # The exception class only: redis messages may echo connection URLs (with passwords).
    details = {"operation": operation, "error_type": type(exc).__name__}
    log.warning("recipient_stats_cache_error", extra=details)
