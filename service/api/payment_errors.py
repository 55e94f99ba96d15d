"""The one table from business errors (service/domain/errors.py) to HTTP answers, and the
answer to a call Blink did not answer."""

from __future__ import annotations

from flask import Response

from service.api.response_schemas import PUBLIC_LEG_EXCLUDE, LegStatusSchema
from service.blink import BlinkTimeout, BlinkUnavailable
from service.domain import errors as payment
from service.errors import (
    ApiError,
    BadGateway,
    BadRequest,
    Conflict,
    Forbidden,
    GatewayTimeout,
    NotFound,
    error_response,
)

_STATUS: dict[type[payment.PaymentError], type[ApiError]] = {
    payment.SplitNotFound: NotFound,
    payment.InvoiceNotPaid: Conflict,
    payment.ForwardingInProgress: Conflict,
    payment.MerchantMismatch: Forbidden,
    payment.MerchantKeyNotApplicable: Forbidden,
    payment.UpstreamRejected: BadGateway,
}


def payment_error_response(error: payment.PaymentError) -> tuple[Response, int, dict[str, str]]:
    """The answer to a business error; anything not in the table is the client's fault (400)."""
    answer = _api_error(error)
    response, status = error_response(answer.status, answer.code, answer.message, answer.details)
    return response, status, answer.headers()


def _api_error(error: payment.PaymentError) -> ApiError:
    details = dict(error.details)
    if isinstance(error, payment.ForwardingIncomplete):
        # Anyone who knows the hash may see this answer: legs without recipients or errors.
        details["legs"] = LegStatusSchema(many=True, exclude=PUBLIC_LEG_EXCLUDE).dump(error.legs)
    if isinstance(error, payment.ForwardingIncomplete | payment.UpstreamUnavailable):
        details.setdefault("retryable", True)
        api_type = GatewayTimeout if error.timed_out else BadGateway
        timed_out_asking = error.timed_out and isinstance(error, payment.UpstreamUnavailable)
        return api_type("blink_timeout" if timed_out_asking else error.code, error.message, details)
    if isinstance(error, payment.UpstreamRejected):
        details.setdefault("retryable", False)
    return _STATUS.get(type(error), BadRequest)(error.code, error.message, details)


def blink_unavailable(error: BlinkUnavailable) -> ApiError:
    """504 when Blink timed out, else 502: either way the same call may be repeated."""
    if isinstance(error, BlinkTimeout):
        return GatewayTimeout("blink_timeout", "Blink did not answer in time.", {"retryable": True})
    return BadGateway("blink_unavailable", "Blink is not answering.", {"retryable": True})
