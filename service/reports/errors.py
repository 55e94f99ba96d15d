"""Errors of the merchant reports, free of Flask: the blueprint maps them to HTTP answers."""

from __future__ import annotations

from typing import Any


class ReportError(Exception):
    """Base of the report errors; `code` is a stable snake_case code clients may branch on."""

    code = "report_error"

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = dict(details or {})


class InvalidDate(ReportError):
    code = "invalid_date"


class InvalidTimezone(ReportError):
    code = "invalid_timezone"


class RangeTooLarge(ReportError):
    code = "range_too_large"


class UnknownMerchant(ReportError):
    """No key given, or no sale was ever made with it: the caller is not a merchant we know."""

    code = "unauthorized"


class InvalidUsername(ReportError):
    code = "invalid_username"


class InvalidPayoutQuery(ReportError):
    """A payout-log argument other than the period (status, limit, cursor) is not understood."""

    code = "invalid_payout_query"
