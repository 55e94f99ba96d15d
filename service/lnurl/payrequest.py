"""LNURL-pay documents (LUD-06, LUD-12): the pay request, its callback URL, the callback's answer.

Amounts on the wire are millisatoshis; the service thinks in whole sats, so a pay request's range
is exposed as the whole sats inside it. Either answer may be ``{"status": "ERROR", "reason"}``,
which becomes RecipientInvalid carrying the server's reason (cleaned, see errors.remote_text).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from service.lnurl.errors import RecipientInvalid, remote_text

PAY_REQUEST_TAG = "payRequest"
MSAT_PER_SAT = 1000


@dataclass(frozen=True)
class PayRequest:
    callback: str
    min_sendable_msat: int
    max_sendable_msat: int
    metadata: str
    comment_allowed: int = 0

    @property
    def min_sendable_sats(self) -> int:
        return -(-self.min_sendable_msat // MSAT_PER_SAT)

    @property
    def max_sendable_sats(self) -> int:
        return self.max_sendable_msat // MSAT_PER_SAT

    def accepts_sats(self, sats: int) -> bool:
        return self.min_sendable_msat <= sats * MSAT_PER_SAT <= self.max_sendable_msat

    def callback_url(self, amount_msat: int, comment: str | None = None) -> str:
        """The callback with ``amount`` (and ``comment`` only when the server accepts one, cut
        to its ``commentAllowed`` length) added to whatever query the callback already has."""
        params: dict[str, str] = {"amount": str(amount_msat)}
        if comment and self.comment_allowed > 0:
            params["comment"] = comment[: self.comment_allowed]
        separator = "&" if urlsplit(self.callback).query else "?"
        if self.callback.endswith(("?", "&")):
            separator = ""
        return self.callback + separator + urlencode(params)


def parse_pay_request(document: Any) -> PayRequest:
    """The first LNURL-pay answer, checked; RecipientInvalid when it is not a usable payRequest."""
    _raise_for_error_status(document)
    if not isinstance(document, dict):
        raise _invalid("the recipient's server answered something other than a JSON object", "malformed")
    if document.get("tag") != PAY_REQUEST_TAG:
        raise _invalid("the recipient's LNURL is not a pay request (LNURL-pay)", "wrong_tag")
    callback = document.get("callback")
    if not isinstance(callback, str) or not callback.lower().startswith(("https://", "http://")):
        raise _invalid("the recipient's pay request has no valid callback URL", "malformed")
    low = _msat(document.get("minSendable"))
    high = _msat(document.get("maxSendable"))
    if low is None or high is None or low < 1 or low > high:
        raise _invalid("the recipient's pay request has no valid amount range", "malformed")
    metadata = document.get("metadata")
    if not isinstance(metadata, str):
        raise _invalid("the recipient's pay request has no metadata", "malformed")
    comment_allowed = document.get("commentAllowed")
    if not isinstance(comment_allowed, int) or isinstance(comment_allowed, bool) or comment_allowed < 0:
        comment_allowed = 0
    return PayRequest(callback, low, high, metadata, comment_allowed)


def parse_invoice_answer(document: Any) -> str:
    """The ``pr`` of the callback's answer (LUD-06); never follows ``successAction`` or routes."""
    _raise_for_error_status(document)
    payment_request = document.get("pr") if isinstance(document, dict) else None
    if not isinstance(payment_request, str) or not payment_request.strip():
        raise _invalid("the recipient's server returned no invoice", "no_invoice")
    return payment_request.strip()


def _raise_for_error_status(document: Any) -> None:
    if isinstance(document, dict) and str(document.get("status", "")).upper() == "ERROR":
        reason = remote_text(document.get("reason"))
        raise _invalid(f"the recipient's server refused: {reason}", "status_error")


def _msat(value: Any) -> int | None:
    # JSON numbers may arrive as 1000.0; a fractional millisatoshi is not an amount.
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value if isinstance(value, int) else None


def _invalid(message: str, reason: str) -> RecipientInvalid:
    return RecipientInvalid(message, reason=reason)
