"""The one table from business errors (service/domain/errors.py) to HTTP answers."""

from __future__ import annotations

from typing import NoReturn

from service.domain import errors as payment
from service.errors import (
    ApiError,
    BadGateway,
    BadRequest,
    Conflict,
    Forbidden,
    GatewayTimeout,
    NotFound,
)

_STATUS: dict[type[payment.PaymentError], type[ApiError]] = {
    payment.SplitNotFound: NotFound,
    payment.InvoiceNotPaid: Conflict,
    payment.ForwardingInProgress: Conflict,
    payment.MerchantMismatch: Forbidden,
    payment.MerchantWalletMismatch: BadRequest,
    payment.InvalidMerchantKey: BadRequest,
    payment.UnknownTipRecipient: BadRequest,
    payment.UpstreamRejected: BadGateway,
}


def raise_api_error(error: payment.PaymentError) -> NoReturn:
    details = dict(error.details)
    if isinstance(error, payment.ForwardingIncomplete | payment.UpstreamUnavailable):
        details.setdefault("retryable", True)
        api_type = GatewayTimeout if error.timed_out else BadGateway
        timed_out_asking = error.timed_out and isinstance(error, payment.UpstreamUnavailable)
        code = "blink_timeout" if timed_out_asking else error.code
        raise api_type(code, error.message, details) from error
    if isinstance(error, payment.UpstreamRejected):
        details.setdefault("retryable", False)
    api_type = _STATUS.get(type(error), BadRequest)
    raise api_type(error.code, error.message, details) from error
