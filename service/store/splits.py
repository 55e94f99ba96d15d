"""SplitStore: the hybrid store. Postgres is the truth, Redis the hot copy, the legacy file a
read-only fallback during a cutover.

Writes go to Postgres first (each state change and its payment_events row commit in one
statement), then Redis: save() writes the hot copy, every later state change deletes it so
the next get() re-warms it from Postgres. get() may therefore briefly lag a concurrent
change; every forwarding decision reads get_fresh(), which never trusts the cache.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from service.domain.clock import Clock, utc_now
from service.domain.errors import SplitNotCompletable, SplitNotFound
from service.domain.model import Leg, LegInvoice, LegKind, NewSplit, Split, SplitStatus
from service.store.backlog import Backlog, read_backlog
from service.store.cache import SplitCache, ttl_until
from service.store.fingerprints import Fingerprints
from service.store.legacy import LegacyFileStore
from service.store.postgres import Database
from service.store.records import leg_from_mapping, split_from_mapping

# Statuses worth a hot copy: a split still on its way to completion.
_WARM_STATUSES = frozenset({SplitStatus.PENDING, SplitStatus.PAID, SplitStatus.FORWARDING})
_MAX_ERROR_CHARS = 1000


def _fees_json(fees: Mapping[int, int] | None) -> str:
    return json.dumps({str(leg_id): fee for leg_id, fee in (fees or {}).items()})


def _error_text(error: str | None) -> str | None:
    # Errors are recorded for operators; cap them so a huge upstream body cannot bloat rows.
    return None if error is None else error[:_MAX_ERROR_CHARS]


class SplitStore:
    def __init__(
        self,
        db: Database,
        cache: SplitCache,
        fingerprints: Fingerprints,
        legacy: LegacyFileStore | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.db = db
        self.cache = cache
        self.fingerprints = fingerprints
        self.legacy = legacy
        self.clock = clock
        self.q = db.q

    # --- creation and reads -------------------------------------------------------------

    def save(self, new: NewSplit) -> Split:
        """Split + planned legs + 'created' event in one statement; then the hot copy."""
        now = self.clock()
        base_wallet = {LegKind.BASE: new.merchant_wallet_id}
        legs = [
            {**vars(leg), "recipient_wallet_id": leg.recipient_wallet_id or base_wallet.get(leg.kind)}
            for leg in new.legs
        ]
        params = {
            **vars(new),  # every field of NewSplit is a column (or the legs) of insert_split
            "tip_recipients": Jsonb([r.to_json() for r in new.tip_recipients]),
            "legs": json.dumps(legs),
            "now": now,
        }
        with self.db.connection() as conn:
            row = self.q.insert_split.one(conn, **params)
        split = split_from_mapping(row)
        self.cache.set(split, ttl_until(split.expires_at, now, minimum=1))
        return split

    def get(self, payment_hash: str) -> Split | None:
        """Redis, then Postgres (re-warming Redis), then the legacy file (read-only)."""
        cached = self.cache.get(payment_hash)
        if cached is not None:
            return cached
        split = self.get_fresh(payment_hash)
        if split is not None:
            if split.status in _WARM_STATUSES:
                self.cache.set(split, ttl_until(split.expires_at, self.clock()))
            return split
        return self._legacy_split(payment_hash)

    def get_fresh(self, payment_hash: str) -> Split | None:
        """Postgres only: state machine decisions never trust the cache."""
        with self.db.connection() as conn:
            row = self.q.select_split.one(conn, payment_hash=payment_hash)
        return None if row is None else split_from_mapping(row)

    def _legacy_split(self, payment_hash: str) -> Split | None:
        if self.legacy is None:
            return None
        record = self.legacy.get(payment_hash)
        if record is None:
            return None
        # Only the fingerprint leaves this line: the file's plaintext key goes no further.
        return dataclasses.replace(
            record.split, merchant_key_fingerprint=self.fingerprints.fingerprint(record.api_key)
        )

    # --- split state changes ------------------------------------------------------------

    def mark_paid(self, payment_hash: str, source: str) -> Split:
        """pending (or expired: a late payment) -> paid with a 'paid' event; idempotent."""
        with self.db.connection() as conn:
            row = self.q.mark_paid.one(conn, payment_hash=payment_hash, source=source, now=self.clock())
        if row is None:
            raise SplitNotFound(f"no split with payment hash {payment_hash}")
        if row["changed"]:
            self.cache.delete(payment_hash)
        return split_from_mapping(row)

    def claim(self, payment_hash: str, owner: str, lease_seconds: float) -> Split | None:
        """Takes the forwarding lease; None when not claimable (unpaid, done, or leased)."""
        return self._claim(payment_hash, owner, lease_seconds, source=None)

    def mark_paid_and_claim(
        self, payment_hash: str, source: str, owner: str, lease_seconds: float
    ) -> Split | None:
        """mark_paid and claim in one statement, for a split Blink has just reported paid.

        None when not claimable (done, or leased to another holder).
        """
        return self._claim(payment_hash, owner, lease_seconds, source=source)

    def _claim(self, payment_hash: str, owner: str, lease_seconds: float, source: str | None) -> Split | None:
        with self.db.connection() as conn:
            row = self.q.claim_split.one(
                conn, payment_hash=payment_hash, source=source, owner=owner,
                lease_seconds=lease_seconds, now=self.clock(),
            )
        if row is None:
            return None
        self.cache.delete(payment_hash)
        return split_from_mapping(row)

    def release(self, payment_hash: str, owner: str, error: str | None = None) -> bool:
        """Drops owner's lease (status stays forwarding); False when owner held none."""
        with self.db.connection() as conn:
            released = self.q.release_split.scalar(
                conn, payment_hash=payment_hash, owner=owner, error=_error_text(error), now=self.clock()
            )
        if released:
            self.cache.delete(payment_hash)
        return bool(released)

    def complete(
        self,
        payment_hash: str,
        owner: str,
        paid_leg_ids: Sequence[int] = (),
        fees: Mapping[int, int] | None = None,
    ) -> Split:
        """forwarding -> completed when every leg succeeded; then the hot copy is deleted.

        paid_leg_ids are first marked succeeded (as mark_legs_succeeded, with their fees) in the
        same transaction; they stay marked even when the split cannot be completed. Completing an
        already completed split returns it unchanged. Raises SplitNotCompletable when a leg is
        unsettled or owner does not hold the lease.
        """
        now = self.clock()
        with self.db.transaction() as conn:
            legs = []
            if paid_leg_ids:
                legs = self.q.mark_legs_succeeded.all(
                    conn, leg_ids=list(paid_leg_ids), fees=_fees_json(fees), now=now
                )
            row = self.q.complete_split.one(conn, payment_hash=payment_hash, owner=owner, now=now)
        self._forget_paid(legs, completed=payment_hash if row is not None else None)
        if row is not None:
            return split_from_mapping(row)
        current = self.get_fresh(payment_hash)
        if current is None:
            raise SplitNotFound(f"no split with payment hash {payment_hash}")
        if current.status is SplitStatus.COMPLETED:
            return current
        unsettled = [leg.id for leg in current.legs if leg.status.value != "succeeded"]
        if unsettled:
            raise SplitNotCompletable(f"legs not settled: {unsettled}")
        raise SplitNotCompletable(f"split is {current.status.value} and not leased to this owner")

    def fail(self, payment_hash: str, error: str, owner: str | None = None) -> Split | None:
        """paid/forwarding -> failed (an operator must act), with a 'failed' event.

        With owner, only while owner still holds the lease (None: it no longer does).
        """
        with self.db.connection() as conn:
            row = self.q.fail_split.one(
                conn, payment_hash=payment_hash, error=_error_text(error), owner=owner, now=self.clock()
            )
        if row is None:
            return None
        self.cache.delete(payment_hash)
        return split_from_mapping(row)

    def expire_unpaid(self) -> int:
        """cleanup_expired_payments(): expires only unpaid pending splits past their expiry.

        Their hot copies expire by themselves (their TTL is the invoice expiry).
        """
        with self.db.connection() as conn:
            return int(self.q.expire_unpaid.scalar(conn, now=self.clock()))

    # --- the work of the worker and the operator ------------------------------------------
    # The worker passes its own clock's `now`: what is due is decided by the caller's time.

    def claim_pending_checks(
        self, now: datetime, min_age_seconds: float, max_interval_seconds: float, limit: int
    ) -> list[str]:
        """Hashes of pending splits due for a payment check at Blink, stamped as checked."""
        params = {"min_age_seconds": min_age_seconds, "max_interval_seconds": max_interval_seconds}
        with self.db.connection() as conn:
            rows = self.q.claim_pending_checks.all(conn, now=now, limit=limit, **params)
        return [row["payment_hash"] for row in rows]

    def expire_checked_unpaid(self, now: datetime, payment_hashes: list[str]) -> int:
        """Expires those of payment_hashes that Blink has just answered unpaid after their expiry."""
        with self.db.connection() as conn:
            return int(self.q.expire_checked_unpaid.scalar(conn, now=now, payment_hashes=payment_hashes) or 0)

    def claim_due(self, now: datetime, owner: str, lease_seconds: float, limit: int) -> list[Split]:
        """Leases a batch of splits due for forwarding to owner in one statement (SKIP LOCKED)."""
        with self.db.connection() as conn:
            rows = self.q.claim_due_splits.all(
                conn, now=now, owner=owner, lease_seconds=lease_seconds, limit=limit
            )
        return [split_from_mapping(row) for row in rows]

    def renew_lease(self, now: datetime, payment_hash: str, owner: str) -> bool:
        """Refreshes owner's lease; False when owner no longer holds it."""
        with self.db.connection() as conn:
            return bool(self.q.renew_lease.run(conn, payment_hash=payment_hash, owner=owner, now=now))

    def oldest_due_age_seconds(self, now: datetime, lease_seconds: float) -> float:
        """How long the oldest split due for forwarding has waited since it was paid (0: none)."""
        with self.db.connection() as conn:
            age = self.q.oldest_due_age_seconds.scalar(conn, now=now, lease_seconds=lease_seconds)
        return float(age or 0.0)

    def backlog(self, now: datetime) -> Backlog:
        """Failed splits, the oldest unforwarded one's age, retrying legs: what the alerts watch."""
        return read_backlog(self.db, now)

    def needing_attention(self, lease_seconds: float, limit: int = 100) -> list[Split]:
        """Failed splits, and forwarding ones that look stuck (a failed leg or an expired lease)."""
        with self.db.connection() as conn:
            rows = self.q.list_attention_splits.all(
                conn, now=self.clock(), lease_seconds=lease_seconds, limit=limit
            )
        return [split_from_mapping(row) for row in rows]

    def reset_for_retry(
        self, payment_hash: str, lease_seconds: float, source: str = "operator"
    ) -> int | None:
        """A failed or stuck split back to forwarding, its failed legs' attempts reset; the
        'retry_requested' event names source (operator or merchant).

        Returns the number of legs reset; None when the split is unknown or not failed/stuck
        (a completed split is never touched, and a lease someone still holds is respected).
        """
        with self.db.connection() as conn:
            row = self.q.reset_split_for_retry.one(
                conn,
                payment_hash=payment_hash,
                now=self.clock(),
                lease_seconds=lease_seconds,
                source=source,
            )
        return None if row is None else int(row["legs_reset"])

    # --- leg state changes --------------------------------------------------------------

    def start_sending(
        self, payment_hash: str, invoices: Mapping[int, LegInvoice], leg_ids: Sequence[int]
    ) -> list[Leg]:
        """Records new leg invoices ({leg_id: LegInvoice or (payment_request, payment_hash)}:
        planned or failed -> invoiced with received_sats, only for a leg without one) and marks
        leg_ids sending (invoiced, failed or sending after a crash -> sending, attempts + 1), in one
        transaction: every invoice is committed before it is paid. Returns the legs now sending,
        each with its stored invoice (a leg invoiced first by another holder keeps that one)."""
        now = self.clock()
        recorded = [
            {"leg_id": leg_id, **LegInvoice(*invoice)._asdict(), "recipient_wallet_id": None}
            for leg_id, invoice in invoices.items()
        ]
        lnurl_hashes = sorted({row["payment_hash"] for row in recorded if row["received_sats"] is not None})
        with self.db.transaction() as conn:
            if lnurl_hashes:
                self.q.lock_lnurl_invoices.all(conn, hashes=lnurl_hashes)
            if recorded:
                self.q.record_leg_invoices.run(conn, invoices=json.dumps(recorded), now=now)
            rows = self.q.start_legs_sending.all(conn, leg_ids=list(leg_ids), now=now)
        if rows or recorded:
            self.cache.delete(payment_hash)
        return [leg_from_mapping(row) for row in rows]

    def mark_legs_succeeded(self, leg_ids: Sequence[int], fees: Mapping[int, int] | None = None) -> list[Leg]:
        """-> succeeded with 'leg_paid' and, for tip legs, tip_recipients_stats, in one statement;
        returns the legs that changed (an already succeeded leg is not, and never counted twice).

        fees: {leg_id: routing fee paid} for legs paid outside Blink (a Blink leg's fee is 0)."""
        with self.db.connection() as conn:
            rows = self.q.mark_legs_succeeded.all(
                conn, leg_ids=list(leg_ids), fees=_fees_json(fees), now=self.clock()
            )
        self._forget_paid(rows)
        return [leg_from_mapping(row) for row in rows]

    def _forget_paid(self, rows: list[dict[str, Any]], completed: str | None = None) -> None:
        """After commit: the hot copies and the paid tip recipients' public totals re-warm
        (one Redis round trip for all of them)."""
        hashes = {row["split_payment_hash"] for row in rows} | ({completed} if completed else set())
        recipients = {row["recipient"] for row in rows if row["kind"] == LegKind.TIP.value}
        self.cache.forget(hashes, recipients)

    def mark_leg_failed(self, leg_id: int, error: str, next_attempt_at: datetime | None) -> Leg | None:
        """-> failed with the error and the next retry time; None for a succeeded leg.

        A failure before sending (no invoice could be made) counts as an attempt here; a failed
        payment was already counted by start_sending.
        """
        return self._leg_change(
            self.q.mark_leg_failed, leg_id=leg_id, error=_error_text(error), next_attempt_at=next_attempt_at
        )

    def discard_expired_leg_invoice(self, leg_id: int, payment_hash: str) -> Leg | None:
        """Forgets a leg invoice Blink reports EXPIRED, so the next attempt invoices afresh."""
        return self._leg_change(self.q.discard_expired_leg_invoice, leg_id=leg_id, payment_hash=payment_hash)

    def legs_holding_invoices(self, payment_hashes: Collection[str]) -> dict[str, set[int]]:
        """{payment hash: ids of the legs that store that invoice}, for the hashes some leg stores."""
        with self.db.connection() as conn:
            rows = self.q.select_legs_holding_invoices.all(conn, hashes=list(payment_hashes))
        holders: dict[str, set[int]] = {}
        for row in rows:
            holders.setdefault(row["payment_hash"], set()).add(row["id"])
        return holders

    def _leg_change(self, statement: Any, **params: Any) -> Leg | None:
        with self.db.connection() as conn:
            row = statement.one(conn, now=self.clock(), **params)
        if row is None:
            return None
        self.cache.delete(row["split_payment_hash"])
        return leg_from_mapping(row)

    # --- reads for the public stats -------------------------------------------------------

    def recipient_stats(self, username: str) -> dict[str, Any] | None:
        with self.db.connection() as conn:
            return self.q.select_recipient_stats.one(conn, username=username)
