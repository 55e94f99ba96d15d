"""Paying Lightning Addresses and LNURL-pay links safely (DESIGN 8, issue 14).

recipients: who a recipient is, normalised; fetcher: the SSRF-safe, size- and time-bounded
HTTP GET; payrequest: LUD-06/12 documents; invoices: the check before an invoice is stored;
fees: the fee reserve; payer: pay request and checked invoice for a recipient; resolver: the
sale-time check with its positive-only cache.
"""

from service.lnurl.errors import (
    AmountOutOfRange,
    InvoiceRejected,
    LnurlError,
    RecipientInvalid,
    RecipientUnreachable,
)
from service.lnurl.fees import FeePolicy
from service.lnurl.fetcher import SafeFetcher
from service.lnurl.invoices import check_invoice
from service.lnurl.payer import LnurlPayer
from service.lnurl.recipients import Recipient, RecipientKind, parse_recipient
from service.lnurl.resolver import RecipientResolver

__all__ = [
    "AmountOutOfRange",
    "FeePolicy",
    "InvoiceRejected",
    "LnurlError",
    "LnurlPayer",
    "Recipient",
    "RecipientInvalid",
    "RecipientKind",
    "RecipientResolver",
    "RecipientUnreachable",
    "SafeFetcher",
    "check_invoice",
    "parse_recipient",
]
