"""The payout log: every leg of a merchant's paid sales (base and tips), newest sale first.

What each recipient was sent, in what state, after how many attempts, with the last error and
the next attempt: a merchant learns here that a tip is stuck and may send it again
(POST /api/payouts/<paymentHash>/retry). Pages are keyset-paged on (sale created_at, leg id)
like the sales list; the cursor is opaque to clients.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from service.reports.errors import InvalidPayoutQuery
from service.reports.period import ReportPeriod
from service.store.postgres import Database

PAYOUT_STATUSES = ("all", "open", "failed")
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 500
CSV_PAGE_SIZE = 500
_MAX_LEG_ID = 2**63 - 1


@dataclass(frozen=True)
class PayoutRow:
    leg_id: int
    created_at: datetime  # the sale's
    payment_hash: str
    sale_status: str
    kind: str
    recipient: str
    sats: int
    fee_sats: int | None  # the routing fee paid, known once the leg succeeded
    status: str
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None
    paid_at: datetime | None


@dataclass(frozen=True)
class PayoutQuery:
    status: str
    limit: int
    before: tuple[datetime, int] | None  # the keyset of the last row of the previous page


def parse_payout_query(args: Mapping[str, str]) -> PayoutQuery:
    """`status` (all|open|failed, default all), `limit` (1..500, default 100) and `cursor`."""
    status = args.get("status") or "all"
    if status not in PAYOUT_STATUSES:
        raise InvalidPayoutQuery("status must be one of all, open, failed", {"field": "status"})
    limit_text = args.get("limit") or str(DEFAULT_PAGE_SIZE)
    if not limit_text.isdecimal() or not 1 <= int(limit_text) <= MAX_PAGE_SIZE:
        raise InvalidPayoutQuery(
            f"limit must be a whole number from 1 to {MAX_PAGE_SIZE}", {"field": "limit"}
        )
    cursor = args.get("cursor")
    return PayoutQuery(status, int(limit_text), decode_cursor(cursor) if cursor else None)


def encode_cursor(row: PayoutRow) -> str:
    text = f"{row.created_at.isoformat()}|{row.leg_id}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    refused = InvalidPayoutQuery("cursor is not one this report gave out", {"field": "cursor"})
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        moment_text, _, id_text = text.partition("|")
        moment = datetime.fromisoformat(moment_text)
    except (binascii.Error, ValueError, UnicodeError):
        raise refused from None
    if moment.tzinfo is None or not id_text.isdecimal() or not 0 < int(id_text) <= _MAX_LEG_ID:
        raise refused
    return moment, int(id_text)


def local_payout(row: PayoutRow, period: ReportPeriod) -> dict[str, Any]:
    """The row with its times in the report's zone (ISO 8601 with offset), for the JSON answer."""
    return {
        **dataclasses.asdict(row),
        "created_at": period.local(row.created_at),
        "next_attempt_at": period.local(row.next_attempt_at),
        "paid_at": period.local(row.paid_at),
    }


class PayoutLog:
    """Read-only, over the store's Postgres; each page takes a pooled connection for its query only."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def page(
        self, fingerprints: Sequence[str], period: ReportPeriod, query: PayoutQuery
    ) -> tuple[list[PayoutRow], str | None]:
        """One page and the cursor of the next (None when this is the last)."""
        before = query.before or (period.end, 0)
        # One row more than asked tells whether another page follows.
        rows = self._rows(fingerprints, period, query.status, before, query.limit + 1)
        if len(rows) <= query.limit:
            return rows, None
        rows = rows[: query.limit]
        return rows, encode_cursor(rows[-1])

    def pages(
        self, fingerprints: Sequence[str], period: ReportPeriod, status: str, page_size: int = CSV_PAGE_SIZE
    ) -> Iterator[list[PayoutRow]]:
        """Every payout of the period, page by page (the CSV)."""
        before = (period.end, 0)
        while True:
            rows = self._rows(fingerprints, period, status, before, page_size)
            if not rows:
                return
            yield rows
            if len(rows) < page_size:
                return
            before = (rows[-1].created_at, rows[-1].leg_id)

    def _rows(
        self,
        fingerprints: Sequence[str],
        period: ReportPeriod,
        status: str,
        before: tuple[datetime, int],
        limit: int,
    ) -> list[PayoutRow]:
        with self._db.connection() as conn:
            rows = self._db.q.report_payouts_page.all(
                conn,
                fingerprints=list(fingerprints),
                start=period.start,
                end=period.end,
                before_created_at=before[0],
                before_id=before[1],
                status=status,
                limit=limit,
            )
        return [PayoutRow(**row) for row in rows]  # the statement selects exactly its fields
