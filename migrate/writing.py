"""Writing planned splits: Postgres first (the truth), then the Redis hot copy.

Each batch is one transaction with its statements pipelined (one round trip). When a batch
fails, it is rolled back and its records are written one by one, so a single bad record
fails alone. Of each merchant key only its fingerprint is written, as create-invoice writes it
(no key, plaintext or encrypted, is kept). Failure reasons name the error class or constraint,
never a value.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import psycopg
import redis
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from migrate.planning import PlannedSplit
from service.domain.model import LegKind, Split
from service.store import keys
from service.store.errors import ConstraintViolation, StoreError, StoreUnavailable
from service.store.fingerprints import Fingerprints
from service.store.postgres import Database
from service.store.records import split_from_mapping, split_to_document

MIGRATION_SOURCE = "tip-store.json"


class Outcome(StrEnum):
    WRITTEN = "written"
    ALREADY_PRESENT = "already_present"  # a concurrent writer got there first
    FAILED = "failed"


@dataclass(frozen=True)
class WriteResult:
    planned: PlannedSplit
    outcome: Outcome
    reason: str = ""
    split: Split | None = None


class SplitWriter:
    def __init__(
        self,
        db: Database,
        redis_client: redis.Redis,
        fingerprints: Fingerprints,
        clock: Callable[[], datetime],
    ) -> None:
        self._db = db
        self._redis = redis_client
        self._fingerprints = fingerprints
        self._clock = clock
        self._insert = db.q.insert_migrated_split

    def write(self, batch: Sequence[PlannedSplit]) -> list[WriteResult]:
        """Writes one batch; returns one result per planned split, in order."""
        if not batch:
            return []
        now = self._clock()
        params = [self._params(item, now) for item in batch]
        try:
            rows = self._insert_batch(params)
        except StoreUnavailable:
            return [WriteResult(item, Outcome.FAILED, "Postgres is unavailable") for item in batch]
        except (StoreError, psycopg.Error):
            rows = None
        if rows is None:
            results = [self._write_one(item, p) for item, p in zip(batch, params, strict=True)]
        else:
            results = [_result(item, row) for item, row in zip(batch, rows, strict=True)]
        return self._warm(results)

    def _insert_batch(self, params: list[dict[str, Any]]) -> list[dict[str, Any] | None]:
        rows: list[dict[str, Any] | None] = []
        with self._db.transaction() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.executemany(self._insert.sql, params, returning=True)
            while True:
                rows.append(cur.fetchone())
                if not cur.nextset():
                    break
        return rows

    def _write_one(self, item: PlannedSplit, params: dict[str, Any]) -> WriteResult:
        try:
            with self._db.connection() as conn:
                row = self._insert.one(conn, **params)
        except ConstraintViolation as exc:
            return WriteResult(item, Outcome.FAILED, f"refused by the database: {exc.constraint}")
        except StoreUnavailable:
            return WriteResult(item, Outcome.FAILED, "Postgres is unavailable")
        except psycopg.Error as exc:
            return WriteResult(item, Outcome.FAILED, f"refused by the database: {type(exc).__name__}")
        return _result(item, row)

    def _warm(self, results: list[WriteResult]) -> list[WriteResult]:
        """Hot copies of the pending splits just written, in one pipeline, each with its TTL."""
        to_cache = [
            r
            for r in results
            if r.outcome is Outcome.WRITTEN and r.split is not None and r.planned.cache_ttl_seconds
        ]
        if not to_cache:
            return results
        try:
            with self._redis.pipeline(transaction=False) as pipe:
                for result in to_cache:
                    split = result.split
                    ttl = max(1, int(result.planned.cache_ttl_seconds or 1))
                    pipe.set(keys.tip(split.payment_hash), split_to_document(split), ex=ttl)
                pipe.execute()
        except redis.RedisError as exc:
            failed = {id(r) for r in to_cache}
            reason = (
                f"written to Postgres, but the Redis hot copy was not ({type(exc).__name__}); "
                "the store re-warms it on first read"
            )
            return [
                WriteResult(r.planned, Outcome.FAILED, reason, r.split) if id(r) in failed else r
                for r in results
            ]
        return results

    def _params(self, item: PlannedSplit, now: datetime) -> dict[str, Any]:
        split, api_key = item.record.split, item.record.api_key
        legs = [
            {
                "kind": leg.kind.value,
                "recipient": leg.recipient,
                "recipient_wallet_id": split.merchant_wallet_id if leg.kind is LegKind.BASE else None,
                "sats": leg.sats,
                "position": leg.position,
            }
            for leg in item.legs
        ]
        return {
            "payment_hash": split.payment_hash,
            "invoice_sats": split.invoice_sats,
            "base_sats": split.base_sats,
            "tip_sats": split.tip_sats,
            "tip_percent": split.tip_percent,
            "merchant_wallet_id": split.merchant_wallet_id,
            "merchant_key_fingerprint": self._fingerprints.fingerprint(api_key),
            "tip_recipients": Jsonb([r.to_json() for r in split.tip_recipients]),
            "display_currency": split.display_currency,
            "base_amount_display": split.base_amount_display,
            "tip_amount_display": split.tip_amount_display,
            "memo": split.memo,
            "environment": split.environment,
            "status": item.status.value,
            "created_at": split.created_at,
            "expires_at": split.expires_at,
            "legs": json.dumps(legs),
            "source": MIGRATION_SOURCE,
            "now": now,
        }


def _result(item: PlannedSplit, row: dict[str, Any] | None) -> WriteResult:
    if row is None:
        return WriteResult(item, Outcome.ALREADY_PRESENT)
    return WriteResult(item, Outcome.WRITTEN, split=split_from_mapping(row))
