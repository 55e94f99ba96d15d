"""The report CSVs (sales and payouts) as RFC 4180 text (Python's csv module, excel dialect: CRLF
line ends, fields with quotes, commas or line breaks quoted), produced page by page so they can be
streamed.

Sales: one row per sale in every status; reconcile payouts with the rows whose status is
`completed` (forwarded_at is empty on every other row). Payouts: one row per leg of a paid sale.

A column's cell is the row's attribute of that name unless _COMPUTED says otherwise. A time is
written in the report's zone, a display amount as plain decimal text, nothing as an empty cell.
Text is written verbatim except that a cell a spreadsheet would run as a formula (one that
begins with =, +, -, @, tab or carriage return: OWASP's CSV injection rule) gets a leading
single quote, so a memo or an error text like `=HYPERLINK(...)` is shown as text, never executed.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from service.reports.merchant import SaleRow, display_amount
from service.reports.period import ReportPeriod

SALE_COLUMNS = (
    "created_at",
    "payment_hash",
    "status",
    "invoice_sats",
    "base_sats",
    "tip_sats",
    "tip_percent",
    "display_currency",
    "base_amount_display",
    "tip_amount_display",
    "wallet_id",
    "tip_recipients",
    "fee_sats",
    "memo",
    "paid_at",
    "forwarded_at",
)
PAYOUT_COLUMNS = (
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

_FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def _neutralised(cell: str | int) -> str | int:
    """The cell as a spreadsheet will show it rather than evaluate it (numbers stay numbers)."""
    if isinstance(cell, str) and cell.startswith(_FORMULA_TRIGGERS):
        return "'" + cell
    return cell


def _tip_recipients_cell(sale: SaleRow) -> str:
    """'alice=60;bob=40': Blink usernames ([0-9a-z_]), Lightning Addresses and LNURLs hold
    neither '=' nor ';', so they never clash."""
    return ";".join(f"{tip.username}={tip.sats}" for tip in sale.tips)


# The columns whose cell is not the row's attribute of the same name.
_COMPUTED: dict[str, Callable[[Any], str]] = {
    "wallet_id": lambda sale: sale.merchant_wallet_id,
    "tip_recipients": _tip_recipients_cell,
}


def _cell(row: Any, column: str, period: ReportPeriod) -> str | int:
    value = _COMPUTED[column](row) if column in _COMPUTED else getattr(row, column)
    if isinstance(value, datetime):
        value = period.local(value)
    elif isinstance(value, Decimal):
        value = display_amount(value)
    return "" if value is None else _neutralised(value)


def csv_chunks(columns: Sequence[str], pages: Iterable[list[Any]], period: ReportPeriod) -> Iterator[str]:
    """The header, then one chunk of CSV text per page of rows (sales or payouts)."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(columns)
    yield _drain(buffer)
    for page in pages:
        writer.writerows([_cell(row, column, period) for column in columns] for row in page)
        yield _drain(buffer)


def _drain(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate(0)
    return text
