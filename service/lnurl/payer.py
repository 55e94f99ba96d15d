"""LnurlPayer: from a recipient to its pay request, and to a checked invoice for an exact amount.

Every HTTP exchange goes through the SafeFetcher; every invoice through check_invoice. Nothing
here stores or pays anything: the caller commits the checked invoice on its leg, then pays it.
"""

from __future__ import annotations

import logging

from service.lnurl.errors import AmountOutOfRange, RecipientInvalid
from service.lnurl.fetcher import SafeFetcher
from service.lnurl.invoices import DEFAULT_MIN_SECONDS_LEFT, CheckedInvoice, check_invoice
from service.lnurl.payrequest import MSAT_PER_SAT, PayRequest, parse_invoice_answer, parse_pay_request
from service.lnurl.recipients import Recipient

log = logging.getLogger(__name__)


class LnurlPayer:
    def __init__(self, fetcher: SafeFetcher, *, min_seconds_left: int = DEFAULT_MIN_SECONDS_LEFT) -> None:
        self._fetcher = fetcher
        self._min_seconds_left = min_seconds_left

    def pay_request(self, recipient: Recipient) -> PayRequest:
        """The recipient's current pay request (LUD-06 first step), fetched and checked."""
        if recipient.url is None:
            raise RecipientInvalid("a Blink user has no LNURL pay request", reason="not_lnurl")
        return parse_pay_request(self._fetcher.get_json(recipient.url).body)

    def request_invoice(self, recipient: Recipient, sats: int, comment: str | None = None) -> CheckedInvoice:
        """A fresh invoice of exactly ``sats`` from the recipient, checked before it is returned.

        The pay request is fetched again (its range and callback may have changed since the sale);
        the comment is sent only if the server accepts one, cut to the length it allows.
        """
        pay_request = self.pay_request(recipient)
        require_in_range(pay_request, sats)
        amount_msat = sats * MSAT_PER_SAT
        answer = self._fetcher.get_json(pay_request.callback_url(amount_msat, comment))
        invoice = check_invoice(
            parse_invoice_answer(answer.body),
            amount_msat=amount_msat,
            metadata=pay_request.metadata,
            min_seconds_left=self._min_seconds_left,
        )
        log.info(
            "lnurl_invoice_received",
            extra={"recipient": recipient.normalized, "sats": sats, "payment_hash": invoice.payment_hash},
        )
        return invoice


def require_in_range(pay_request: PayRequest, sats: int) -> None:
    if sats <= 0 or not pay_request.accepts_sats(sats):
        raise AmountOutOfRange(
            f"the recipient accepts {pay_request.min_sendable_sats} to {pay_request.max_sendable_sats} "
            f"sats, not {sats}",
            min_sats=pay_request.min_sendable_sats,
            max_sats=pay_request.max_sendable_sats,
        )
