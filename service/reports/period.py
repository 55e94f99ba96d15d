"""The reporting period: whole local days `from`..`to` (inclusive) in one IANA time zone.

A sale belongs to the local day of its `created_at` (the moment the POS issued the invoice),
so a day's figures never move once its sales are done, whenever the forwarding finished.
The period is the half-open UTC interval [start of `from`, start of the day after `to`),
computed with zoneinfo; Postgres groups by the same zone name, so both agree across DST.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

from service.reports.errors import InvalidDate, InvalidTimezone, RangeTooLarge

MAX_RANGE_DAYS = 366
DEFAULT_TIMEZONE = "UTC"
_DATE_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}")
# A day's bounds are computed in any zone (up to 14 h either side of UTC), and date arithmetic
# stops at year 1 and 9999: the first and last calendar days would overflow.
FIRST_DAY, LAST_DAY = date(1, 1, 2), date(9999, 12, 30)


@cache
def _known_zone_names() -> frozenset[str]:
    # Only real IANA names: ZoneInfo alone would also load files such as "posixrules".
    return frozenset(available_timezones()) | {DEFAULT_TIMEZONE}


def parse_zone(name: str | None) -> ZoneInfo:
    """The IANA zone called `name` (UTC when absent); InvalidTimezone otherwise."""
    if name is None or name == "":
        return ZoneInfo(DEFAULT_TIMEZONE)
    if name not in _known_zone_names():
        raise InvalidTimezone("tz must be an IANA time zone name such as Europe/Berlin", {"tz": name[:64]})
    return ZoneInfo(name)


def _parse_day(field: str, text: str) -> date:
    # date.fromisoformat alone would also take "20260301" or week dates; the contract is YYYY-MM-DD.
    if not _DATE_PATTERN.fullmatch(text):
        raise InvalidDate(f"{field} must be a date written YYYY-MM-DD", {"field": field})
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise InvalidDate(f"{field} is not a calendar date", {"field": field}) from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise InvalidDate(f"{field} must be between {FIRST_DAY} and {LAST_DAY}", {"field": field})
    return day


@dataclass(frozen=True)
class ReportPeriod:
    first_day: date
    last_day: date
    zone: ZoneInfo

    @property
    def zone_name(self) -> str:
        return self.zone.key

    @property
    def start(self) -> datetime:
        """The first instant of first_day in the zone, as an aware UTC datetime."""
        return datetime.combine(self.first_day, time(0), tzinfo=self.zone).astimezone(UTC)

    @property
    def end(self) -> datetime:
        """The first instant after last_day in the zone (exclusive bound), in UTC."""
        return datetime.combine(self.last_day + timedelta(days=1), time(0), tzinfo=self.zone).astimezone(UTC)

    def days(self) -> Iterator[date]:
        day = self.first_day
        while day <= self.last_day:
            yield day
            day += timedelta(days=1)

    def local(self, moment: datetime | None) -> str | None:
        """An instant as ISO 8601 in the report's zone (with its offset), or None."""
        return None if moment is None else moment.astimezone(self.zone).isoformat(timespec="seconds")

    def to_json(self) -> dict[str, str]:
        return {
            "from": self.first_day.isoformat(),
            "to": self.last_day.isoformat(),
            "timezone": self.zone_name,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
        }


def parse_period(
    args: Mapping[str, str], now: Callable[[], datetime], *, default_days: int = 1
) -> ReportPeriod:
    """`from`, `to` (YYYY-MM-DD, inclusive) and `tz` from query arguments.

    `to` defaults to today in the zone; without `from` the period is the default_days days
    ending at `to` (one day: today, or `to` alone); `from` alone runs to today. At most
    MAX_RANGE_DAYS days.
    """
    zone = parse_zone(args.get("tz"))
    today = now().astimezone(zone).date()
    from_text, to_text = args.get("from"), args.get("to")
    last_day = _parse_day("to", to_text) if to_text else today
    first_day = _parse_day("from", from_text) if from_text else last_day - timedelta(days=default_days - 1)
    if first_day > last_day:
        details = {"from": first_day.isoformat(), "to": last_day.isoformat()}
        raise InvalidDate("from must not be after to", details)
    days = (last_day - first_day).days + 1
    if days > MAX_RANGE_DAYS:
        raise RangeTooLarge(
            f"a report covers at most {MAX_RANGE_DAYS} days", {"days": days, "maxDays": MAX_RANGE_DAYS}
        )
    return ReportPeriod(first_day, last_day, zone)
