"""The sales list as RFC 4180 CSV (Python's csv module, excel dialect: CRLF line ends, fields
with quotes, commas or line breaks quoted), produced page by page so it can be streamed.

One row per sale in every status; reconcile payouts with the rows whose status is
`completed` (forwarded_at is empty on every other row).

Text is written verbatim except that a cell a spreadsheet would run as a formula (one that
begins with =, +, -, @, tab or carriage return: OWASP's CSV injection rule) gets a leading
single quote, so a memo like `=HYPERLINK(...)` is shown as text, never executed.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal

from service.reports.merchant import SaleRow, display_amount
from service.reports.period import ReportPeriod

COLUMNS = (
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


_FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def neutralised(cell: str | int) -> str | int:
    """The cell as a spreadsheet will show it rather than evaluate it (numbers stay numbers)."""
    if isinstance(cell, str) and cell.startswith(_FORMULA_TRIGGERS):
        return "'" + cell
    return cell


def tip_recipients_cell(sale: SaleRow) -> str:
    """'alice=60;bob=40': Blink usernames ([0-9a-z_]), Lightning Addresses and LNURLs hold
    neither '=' nor ';', so they never clash."""
    return ";".join(f"{tip.username}={tip.sats}" for tip in sale.tips)


def _decimal_cell(value: Decimal | None) -> str:
    return display_amount(value) or ""


def sale_cells(sale: SaleRow, period: ReportPeriod) -> list[str | int]:
    cells = [
        period.local(sale.created_at) or "",
        sale.payment_hash,
        sale.status,
        sale.invoice_sats,
        sale.base_sats,
        sale.tip_sats,
        _decimal_cell(sale.tip_percent),
        sale.display_currency,
        _decimal_cell(sale.base_amount_display),
        _decimal_cell(sale.tip_amount_display),
        sale.merchant_wallet_id,
        tip_recipients_cell(sale),
        sale.fee_sats,
        sale.memo or "",
        period.local(sale.paid_at) or "",
        period.local(sale.forwarded_at) or "",
    ]
    return [neutralised(cell) for cell in cells]


def csv_chunks(pages: Iterable[list[SaleRow]], period: ReportPeriod) -> Iterator[str]:
    """The header, then one chunk of text per page of sales."""
    return table_chunks(COLUMNS, ([sale_cells(sale, period) for sale in page] for page in pages))


def table_chunks(columns: Sequence[str], pages: Iterable[list[list[str | int]]]) -> Iterator[str]:
    """The header, then one chunk of CSV text per page of rows of cells (the report CSVs)."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(columns)
    yield _drain(buffer)
    for page in pages:
        writer.writerows(page)
        yield _drain(buffer)


def _drain(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate(0)
    return text
