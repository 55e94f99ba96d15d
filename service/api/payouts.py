"""The merchant's payout log and its retry (DESIGN §4, issue 15), by its key in X-API-KEY.

A merchant sees only the legs of its own sales, and may hand its own failed sale back to the
worker exactly as the operator's `splits retry` does (SplitStore.reset_for_retry, recorded as a
'retry_requested' event with source 'merchant'). Any other hash, guessed or real, is 404.
"""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from service.api.fields import shared_schema
from service.api.report_schemas import PayoutLogSchema, RetryAcceptedSchema
from service.api.reports import csv_download, merchant_of_request, merchant_request, report_error
from service.api.request_schemas import PaymentHashPathSchema
from service.api.throttle import NO_STORE, client_address, enforce_rate_limits
from service.context import services
from service.domain.model import SplitStatus
from service.errors import Conflict, NotFound
from service.reports.errors import ReportError
from service.reports.payouts import PayoutLog, local_payout, parse_payout_query
from service.reports.report_csv import PAYOUT_COLUMNS

# Without `from`, the log looks back this many days: a tip stuck since last week must show up
# when the merchant simply asks for failed payouts.
DEFAULT_LOOKBACK_DAYS = 90

payouts_blueprint = Blueprint("payouts", __name__)
payouts_blueprint.register_error_handler(ReportError, report_error)


@payouts_blueprint.get("/api/reports/payouts")
def payout_log():
    """Every leg of the calling merchant's paid sales: recipient, sats, fee, state, attempts, errors.
    ---
    get:
      operationId: payoutLog
      summary: The merchant's payouts (base and tip legs of paid sales), newest sale first, paged
      tags: [reports]
      parameters:
        - {in: header, name: X-API-KEY, required: true, schema: {type: string},
           description: "The merchant's Blink API key (the one its sales were made with)"}
        - {in: query, name: status, schema: {type: string, enum: [all, open, failed], default: all},
           description: "open: not yet delivered; failed: the last attempt failed"}
        - {in: query, name: from, schema: {type: string, format: date},
           description: "First day of sales (default: 89 days before `to`)"}
        - {in: query, name: to, schema: {type: string, format: date}, description: "Last day (default today)"}
        - {in: query, name: tz, schema: {type: string, default: UTC}}
        - {in: query, name: limit, schema: {type: integer, minimum: 1, maximum: 500, default: 100}}
        - {in: query, name: cursor, schema: {type: string}, description: "nextCursor of the previous page"}
      responses:
        200: {description: One page of the log, content: {application/json: {schema: PayoutLog}}}
        400: "invalid_date, invalid_timezone, range_too_large, or invalid_payout_query (status,
          limit or cursor; details.field)"
      errors: [401, 429, 503]
    """
    _reports, fingerprints, period = merchant_request(default_days=DEFAULT_LOOKBACK_DAYS)
    query = parse_payout_query(request.args)
    rows, next_cursor = PayoutLog(services().db).page(fingerprints, period, query)
    answer = {
        "period": period.to_json(),
        "status": query.status,
        "payouts": [local_payout(row, period) for row in rows],
        "next_cursor": next_cursor,
    }
    return jsonify(PayoutLogSchema().dump(answer)), 200, NO_STORE


@payouts_blueprint.get("/api/reports/payouts.csv")
def payout_log_csv():
    """The whole payout log of the period as CSV (RFC 4180, UTF-8), streamed.
    ---
    get:
      operationId: payoutLogCsv
      summary: One row per payout (leg) of the merchant's paid sales, newest sale first
      tags: [reports]
      parameters: [merchant_key, payout_status, from, to, tz]
      responses:
        200:
          description: "Columns: created_at, payment_hash, sale_status, kind, recipient, sats, fee_sats,
            status, attempts, last_error, next_attempt_at, paid_at"
          content: {text/csv: {schema: {type: string}}}
        400: "invalid_date, invalid_timezone, range_too_large or invalid_payout_query"
      errors: [401, 429, 503]
    """
    _reports, fingerprints, period = merchant_request(default_days=DEFAULT_LOOKBACK_DAYS)
    status = parse_payout_query({"status": request.args.get("status", "")}).status
    pages = PayoutLog(services().db).pages(fingerprints, period, status)
    return csv_download("payouts", PAYOUT_COLUMNS, period, pages)


@payouts_blueprint.post("/api/payouts/<payment_hash>/retry")
def retry_payout(payment_hash: str):
    """Send a failed sale's unpaid legs again: the worker retries them.
    ---
    post:
      operationId: retryPayout
      summary: Hand the merchant's own failed sale back to the worker (as the operator's splits retry)
      description: "Legs already paid are never paid again; the failed ones get fresh attempts."
      tags: [reports]
      parameters: [payment_hash, merchant_key]
      responses:
        202: {description: The worker will retry it, content: {application/json: {schema: RetryAccepted}}}
        400: "invalid_payment_hash: not 64 hexadecimal characters"
        404: "split_not_found: none of this merchant's sales has this payment hash"
        409: "split_not_failed: only a failed sale is retried (details.status says what it is)"
      errors: [401, 429, 503]
    """
    svc = services()
    _reports, fingerprints = merchant_of_request()
    payment_hash = shared_schema(PaymentHashPathSchema).parse({"payment_hash": payment_hash})
    _limit_retries("ip", client_address(), svc.config.rate_limit_forward_per_ip_per_minute)
    split = svc.store.get_fresh(payment_hash)
    if split is None or split.merchant_key_fingerprint not in fingerprints:
        raise NotFound("split_not_found", "None of your sales has this payment hash.")
    # Counted only once the sale is the caller's: another merchant's tries never use it up.
    _limit_retries("payment-hash", payment_hash, svc.config.rate_limit_forward_per_hash_per_minute)
    legs_reset = None
    if split.status is SplitStatus.FAILED:
        legs_reset = svc.store.reset_for_retry(
            payment_hash, svc.config.forward_lease_seconds, source="merchant"
        )
    if legs_reset is None:
        current = svc.store.get_fresh(payment_hash) or split
        raise Conflict(
            "split_not_failed",
            "Only a failed sale can be retried; this one is not failed.",
            {"status": str(current.status)},
        )
    answer = {"payment_hash": payment_hash, "status": str(SplitStatus.FORWARDING), "legs_reset": legs_reset}
    return jsonify(RetryAcceptedSchema().dump(answer)), 202, NO_STORE


def _limit_retries(scope: str, identity: str, limit: int) -> None:
    message = "Too many retries; wait a moment and try again."
    enforce_rate_limits("payout-retry", [(scope, identity, limit)], message)
