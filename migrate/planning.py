"""Deciding what becomes of each valid legacy record.

A record whose invoice may still be paid (younger than TIP_TTL_SECONDS) becomes a pending
split in Postgres plus its hot copy in Redis for the time it has left; an older one becomes an
expired split in Postgres only, so its history is kept. A record already in Postgres is
skipped: a re-run changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from migrate.source import InvalidRecord
from service.domain.model import PlannedLeg, SplitStatus
from service.payments.splitting import plan_legs
from service.store.cache import ttl_until
from service.store.legacy import LegacyRecord


@dataclass(frozen=True)
class PlannedSplit:
    record: LegacyRecord
    status: SplitStatus  # PENDING or EXPIRED
    legs: tuple[PlannedLeg, ...]
    cache_ttl_seconds: int | None  # None: no hot copy (expired)

    @property
    def payment_hash(self) -> str:
        return self.record.split.payment_hash


@dataclass(frozen=True)
class Plan:
    to_write: list[PlannedSplit]
    present: list[str]  # payment hashes already in Postgres
    invalid: list[InvalidRecord]  # records whose legs cannot be planned

    def count(self, status: SplitStatus) -> int:
        return sum(1 for item in self.to_write if item.status is status)


def make_plan(records: Iterable[LegacyRecord], present: set[str], now: datetime) -> Plan:
    """Splits records into those to write (with status, legs and TTL) and those already there."""
    to_write: list[PlannedSplit] = []
    already: list[str] = []
    invalid: list[InvalidRecord] = []
    for record in records:
        split = record.split
        if split.payment_hash in present:
            already.append(split.payment_hash)
            continue
        try:
            legs = plan_legs(split.merchant_wallet_id, split.base_sats, split.tip_sats, split.tip_recipients)
        except ValueError as exc:
            invalid.append(InvalidRecord(split.payment_hash, "inconsistent_amounts", str(exc)))
            continue
        if split.expires_at > now:
            status, ttl = SplitStatus.PENDING, ttl_until(split.expires_at, now, minimum=1)
        else:
            status, ttl = SplitStatus.EXPIRED, None
        to_write.append(PlannedSplit(record=record, status=status, legs=legs, cache_ttl_seconds=ttl))
    return Plan(to_write=to_write, present=already, invalid=invalid)
