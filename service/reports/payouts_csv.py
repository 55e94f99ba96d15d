"""The payout log as RFC 4180 CSV, streamed page by page like the sales CSV (same writer, same
formula neutralising: an error text or recipient never runs as a spreadsheet formula)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from service.reports.payouts import PayoutRow
from service.reports.period import ReportPeriod
from service.reports.sales_csv import neutralised, table_chunks

COLUMNS = (
    "created_at",
    "payment_hash",
    "sale_status",
    "kind",
    "recipient",
    "sats",
    "fee_sats",
    "status",
    "attempts",
    "last_error",
    "next_attempt_at",
    "paid_at",
)


def payout_cells(row: PayoutRow, period: ReportPeriod) -> list[str | int]:
    cells = [
        period.local(row.created_at) or "",
        row.payment_hash,
        row.sale_status,
        row.kind,
        row.recipient,
        row.sats,
        "" if row.fee_sats is None else row.fee_sats,
        row.status,
        row.attempts,
        row.last_error or "",
        period.local(row.next_attempt_at) or "",
        period.local(row.paid_at) or "",
    ]
    return [neutralised(cell) for cell in cells]


def payouts_csv_chunks(pages: Iterable[list[PayoutRow]], period: ReportPeriod) -> Iterator[str]:
    return table_chunks(COLUMNS, ([payout_cells(row, period) for row in page] for page in pages))
