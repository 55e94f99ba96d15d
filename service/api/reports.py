"""Merchant reports and public tip-recipient stats.

Reports authenticate with the merchant's own Blink API key in X-API-KEY, matched by its
fingerprint (service/reports/merchant.py): a merchant only ever sees its own sales. Each view's
docstring is its OpenAPI operation (service/api/openapi.py).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import Any

from flask import Blueprint, Response, jsonify, request, stream_with_context

from service.api.report_schemas import RecipientStatsSchema, ReportSummarySchema, TipsReportSchema
from service.api.throttle import (
    API_KEY_HEADER,
    NO_STORE,
    count_failed_auth,
    refuse_if_failing_auth,
    require_blink_accepts,
)
from service.context import services
from service.domain.clock import utc_now
from service.errors import NotFound, error_response
from service.reports.errors import ReportError, UnknownMerchant
from service.reports.merchant import MerchantReports
from service.reports.period import ReportPeriod, parse_period
from service.reports.recipient_stats import RecipientStats
from service.reports.report_csv import SALE_COLUMNS, csv_chunks

reports_blueprint = Blueprint("reports", __name__)



def merchant_request(default_days: int = 1) -> tuple[MerchantReports, list[str], ReportPeriod]:
    """The reports, the caller's key fingerprints (401 first) and the requested period (without
    `from`, the default_days days ending at `to`)."""
    reports, fingerprints = merchant_of_request()
    return reports, fingerprints, parse_period(request.args, utc_now, default_days=default_days)


def merchant_of_request() -> tuple[MerchantReports, list[str]]:
    """The reports and the fingerprints of X-API-KEY: a key that made a sale here AND that Blink
    still accepts (a key the merchant deleted at Blink stops reading its books here once the
    ten-minute positive answer runs out); 401 otherwise."""
    svc = services()
    reports = MerchantReports(svc.db, svc.fingerprints.candidates)
    refuse_if_failing_auth()
    try:
        api_key = request.headers.get(API_KEY_HEADER, "").strip()
        fingerprints = reports.authenticate(api_key)
    except UnknownMerchant:
        count_failed_auth()
        raise
    # Asked only for a key with sales here, so strangers cannot use this to test keys at Blink.
    require_blink_accepts(api_key, fingerprints)
    return reports, fingerprints


@reports_blueprint.errorhandler(ReportError)
def report_error(error: ReportError) -> tuple[Response, int]:
    status = 401 if isinstance(error, UnknownMerchant) else 400
    return error_response(status, error.code, error.message, error.details)


@reports_blueprint.get("/api/reports/summary")
def summary():
    """Daily sales summary of the calling merchant.
    ---
    get:
      summary: Completed sales per day, totals, display-currency totals, unforwarded sales by status
      tags: [reports]
      parameters:
        - {in: header, name: X-API-KEY, required: true, schema: {type: string},
           description: "The merchant's Blink API key (the one its sales were made with)"}
        - {in: query, name: from, schema: {type: string, format: date},
           description: "First day (default: to)"}
        - {in: query, name: to, schema: {type: string, format: date},
           description: "Last day, inclusive (default: today)"}
        - {in: query, name: tz, schema: {type: string, default: UTC},
           description: "IANA time zone of the days"}
      responses:
        200: {description: The summary, content: {application/json: {schema: ReportSummary}}}
        400: "invalid_date, invalid_timezone or range_too_large (over 366 days)"
      errors: [401, 429, 503]
    """
    reports, fingerprints, period = merchant_request()
    return jsonify(ReportSummarySchema().dump(reports.summary(fingerprints, period))), 200, NO_STORE


@reports_blueprint.get("/api/reports/tips")
def tips():
    """Tips of the calling merchant's completed sales, per recipient and per day.
    ---
    get:
      summary: Per tip recipient count, sats, first and last tip; and per day
      tags: [reports]
      parameters: [merchant_key, from, to, tz]
      responses:
        200: {description: The tips report, content: {application/json: {schema: TipsReport}}}
        400: "invalid_date, invalid_timezone or range_too_large"
      errors: [401, 429, 503]
    """
    reports, fingerprints, period = merchant_request()
    return jsonify(TipsReportSchema().dump(reports.tips(fingerprints, period))), 200, NO_STORE


@reports_blueprint.get("/api/reports/sales.csv")
def sales_csv():
    """Every sale of the calling merchant as CSV (RFC 4180, UTF-8), streamed.
    ---
    get:
      summary: One row per sale in any status; forwarded_at is set on completed rows only
      tags: [reports]
      parameters: [merchant_key, from, to, tz]
      responses:
        200:
          description: "Columns: created_at, payment_hash, status, invoice_sats, base_sats, tip_sats,
            tip_percent, display_currency, base_amount_display, tip_amount_display, wallet_id,
            tip_recipients (user=sats;...), fee_sats, memo, paid_at, forwarded_at"
          content: {text/csv: {schema: {type: string}}}
        400: "invalid_date, invalid_timezone or range_too_large"
      errors: [401, 429, 503]
    """
    reports, fingerprints, period = merchant_request()
    pages = reports.sales(fingerprints, period)
    return csv_download("sales", SALE_COLUMNS, period, pages)


def csv_download(
    name: str, columns: Sequence[str], period: ReportPeriod, pages: Iterator[list[Any]]
) -> Response:
    """pages as a streamed CSV attachment of those columns, named after the report and its period."""
    # The first page is read before answering, so a database failure is still a JSON error.
    first = list(itertools.islice(pages, 1))
    body = stream_with_context(csv_chunks(columns, itertools.chain(first, pages), period))
    filename = f"{name}_{period.first_day.isoformat()}_{period.last_day.isoformat()}.csv"
    headers = {**NO_STORE, "Content-Disposition": f'attachment; filename="{filename}"'}
    return Response(body, status=200, headers=headers, content_type="text/csv; charset=utf-8")


@reports_blueprint.get("/api/stats/recipients/<username>")
def recipient_stats(username: str):
    """Public totals of one tip recipient (cached for an hour, refreshed by each new tip).
    ---
    get:
      summary: Count, sats, average, largest, smallest, first and last tip of a recipient
      tags: [stats]
      parameters:
        - {in: path, name: username, required: true, schema: {type: string},
           description: "A Blink username (a Lightning Address recipient has no public stats)"}
      responses:
        200: {description: The recipient's totals, content: {application/json: {schema: RecipientStats}}}
        400: "invalid_username: not a Blink username"
        404: "recipient_not_found: no tip was ever forwarded to this username"
      errors: [503]
    """
    svc = services()
    lookup = RecipientStats(svc.store.recipient_stats, svc.redis).lookup(username)
    if lookup.stats is None:
        raise NotFound("recipient_not_found", "No tip was forwarded to this recipient yet.")
    headers = {"X-Cache": "HIT" if lookup.cache_hit else "MISS"}
    return jsonify(RecipientStatsSchema().dump(lookup.stats)), 200, headers
