"""Merchant reports: daily sales summary, tips per recipient, and the sales list for the CSV.

A merchant is identified by the HMAC fingerprints of its Blink API key (one per configured
fingerprint secret, Fingerprints.candidates, so a rotation keeps earlier sales its own):
it sees only splits created with that key, i.e. sales forwarded to its own wallet. Only
`completed` splits count as forwarded money (their base reached the merchant, every tip its
recipient); sales in other statuses are counted apart under `notForwarded` and listed in the
CSV with their status and an empty forwarded_at.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from psycopg import errors as pg_errors

from service.reports.errors import InvalidTimezone, UnknownMerchant
from service.reports.period import ReportPeriod
from service.store.postgres import Database

COMPLETED = "completed"
SALES_PAGE_SIZE = 500


def display_amount(value: Decimal | None) -> str | None:
    """A display amount as plain decimal text without trailing zeros ("12.5", "100")."""
    if value is None:
        return None
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


@dataclass(frozen=True)
class TipLine:
    username: str
    sats: int


@dataclass(frozen=True)
class SaleRow:
    """One sale as the CSV lists it."""

    id: int
    created_at: datetime
    payment_hash: str
    status: str
    invoice_sats: int
    base_sats: int
    tip_sats: int
    tip_percent: Decimal | None
    display_currency: str
    base_amount_display: Decimal | None
    tip_amount_display: Decimal | None
    merchant_wallet_id: str
    memo: str | None
    paid_at: datetime | None
    processed_at: datetime | None
    tips: tuple[TipLine, ...]
    fee_sats: int = 0  # routing fees paid out of its legs (Lightning Address payouts)

    @property
    def forwarded_at(self) -> datetime | None:
        """When the sale was fully forwarded; None unless completed."""
        return self.processed_at if self.status == COMPLETED else None


def _sale_from_row(row: dict[str, Any]) -> SaleRow:
    # report_sales_page selects exactly SaleRow's fields; the tip legs come as JSON.
    tips = tuple(TipLine(tip["username"], int(tip["sats"])) for tip in row["tips"])
    return SaleRow(**{**row, "tips": tips})


def _sats_totals() -> dict[str, int]:
    return {"sales": 0, "tippedSales": 0, "invoiceSats": 0, "merchantSats": 0, "tipSats": 0, "feeSats": 0}


def _add_sats(totals: dict[str, int], row: dict[str, Any]) -> None:
    totals["sales"] += int(row["sales"])
    totals["tippedSales"] += int(row["tipped_sales"])
    totals["invoiceSats"] += int(row["invoice_sats"])
    totals["merchantSats"] += int(row["base_sats"])
    totals["tipSats"] += int(row["tip_sats"])
    totals["feeSats"] += int(row["fee_sats"])


class MerchantReports:
    """Read-only reports over the store's Postgres; one instance per app (holds no connection)."""

    def __init__(self, db: Database, fingerprints: Callable[[str], Sequence[str]]) -> None:
        self._db = db
        self._fingerprints = fingerprints

    def authenticate(self, api_key: str | None) -> list[str]:
        """The fingerprints of a key that made at least one sale here; UnknownMerchant otherwise."""
        api_key = (api_key or "").strip()
        if not api_key:
            raise UnknownMerchant("Send your Blink API key in the X-API-KEY header.")
        fingerprints = list(self._fingerprints(api_key))
        with self._db.connection() as conn:
            known = self._db.q.report_merchant_known.scalar(conn, fingerprints=fingerprints)
        if not known:
            raise UnknownMerchant("No sales were made with this API key.")
        return fingerprints

    def _rows(self, statement: str, fingerprints: list[str], period: ReportPeriod) -> list[dict[str, Any]]:
        """The statement's rows for the merchant's sales of the period, by day in its zone."""
        try:
            with self._db.connection() as conn:
                return getattr(self._db.q, statement).all(
                    conn, fingerprints=fingerprints, tz=period.zone_name, start=period.start, end=period.end
                )
        except pg_errors.InvalidParameterValue:
            # A zone zoneinfo knows but this Postgres does not (tz databases of different ages).
            message = "this time zone is not known to the database"
            raise InvalidTimezone(message, {"tz": period.zone_name}) from None

    def summary(self, fingerprints: list[str], period: ReportPeriod) -> dict[str, Any]:
        """Completed sales per day (every day of the period), totals, display totals, the rest by status."""
        rows = self._rows("report_daily_totals", fingerprints, period)
        per_day: dict[date, dict[str, int]] = {day: _sats_totals() for day in period.days()}
        totals = _sats_totals()
        display: dict[str, dict[str, Any]] = {}
        not_forwarded: dict[str, dict[str, int]] = {}
        for row in rows:
            if row["status"] != COMPLETED:
                entry = not_forwarded.setdefault(row["status"], {"sales": 0, "invoiceSats": 0})
                entry["sales"] += int(row["sales"])
                entry["invoiceSats"] += int(row["invoice_sats"])
                continue
            _add_sats(per_day[row["day"]], row)
            _add_sats(totals, row)
            currency = display.setdefault(
                row["display_currency"], {"sales": 0, "base": Decimal(0), "tip": Decimal(0)}
            )
            currency["sales"] += int(row["sales"])
            currency["base"] += row["base_amount_display"] or Decimal(0)
            currency["tip"] += row["tip_amount_display"] or Decimal(0)
        return {
            "period": period.to_json(),
            "totals": totals,
            "displayTotals": [
                {
                    "currency": name,
                    "sales": values["sales"],
                    "baseAmount": display_amount(values["base"]),
                    "tipAmount": display_amount(values["tip"]),
                }
                for name, values in sorted(display.items())
            ],
            "notForwarded": dict(sorted(not_forwarded.items())),
            "days": [{"date": day.isoformat(), **values} for day, values in per_day.items()],
        }

    def tips(self, fingerprints: list[str], period: ReportPeriod) -> dict[str, Any]:
        """Tips of completed sales per recipient (count, sats, first and last) and per day."""
        rows = self._rows("report_tips_by_day", fingerprints, period)
        recipients: dict[str, dict[str, Any]] = {}
        per_day: dict[date, list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            tips, sats = int(row["tips"]), int(row["tip_sats"])
            per_day[row["day"]].append({"username": row["username"], "tips": tips, "tipSats": sats})
            entry = recipients.get(row["username"])
            if entry is None:
                recipients[row["username"]] = entry = {
                    "username": row["username"],
                    "tips": 0,
                    "tipSats": 0,
                    "firstTipAt": row["first_tip_at"],
                    "lastTipAt": row["last_tip_at"],
                }
            entry["tips"] += tips
            entry["tipSats"] += sats
            entry["firstTipAt"] = min(entry["firstTipAt"], row["first_tip_at"])
            entry["lastTipAt"] = max(entry["lastTipAt"], row["last_tip_at"])
        ranked = sorted(recipients.values(), key=lambda r: (-r["tipSats"], r["username"]))
        for entry in ranked:
            entry["firstTipAt"] = period.local(entry["firstTipAt"])
            entry["lastTipAt"] = period.local(entry["lastTipAt"])
        days = []
        for day in period.days():
            lines = sorted(per_day.get(day, []), key=lambda r: (-r["tipSats"], r["username"]))
            days.append(
                {
                    "date": day.isoformat(),
                    "tips": sum(line["tips"] for line in lines),
                    "tipSats": sum(line["tipSats"] for line in lines),
                    "recipients": lines,
                }
            )
        return {
            "period": period.to_json(),
            "totals": {
                "recipients": len(ranked),
                "tips": sum(r["tips"] for r in ranked),
                "tipSats": sum(r["tipSats"] for r in ranked),
            },
            "recipients": ranked,
            "days": days,
        }

    def sales(
        self, fingerprints: list[str], period: ReportPeriod, page_size: int = SALES_PAGE_SIZE
    ) -> Iterator[list[SaleRow]]:
        """Every sale of the period, oldest first, in pages.

        Keyset pagination on (created_at, id): each page takes a pooled connection only for
        its own query, so a slow download never pins a connection.
        """
        after_created_at, after_id = period.start, 0
        while True:
            with self._db.connection() as conn:
                rows = self._db.q.report_sales_page.all(
                    conn,
                    fingerprints=fingerprints,
                    after_created_at=after_created_at,
                    after_id=after_id,
                    end=period.end,
                    limit=page_size,
                )
            if not rows:
                return
            page = [_sale_from_row(row) for row in rows]
            yield page
            if len(rows) < page_size:
                return
            after_created_at, after_id = page[-1].created_at, page[-1].id
