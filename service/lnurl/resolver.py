"""RecipientResolver: the sale-time question "can this recipient be paid this much?".

create-invoice and ``POST /api/recipients/validate`` ask it. A Lightning Address or LNURL is
resolved to its pay request (positive answers cached for a few minutes; refusals never, so a
recipient who fixes their wallet is not refused for minutes); a Blink user is asked of Blink when
a lookup is given. With ``leg_sats`` the share minus the fee reserve must fall in the range.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, Protocol

from service.blink import BlinkRejected
from service.lnurl.errors import LnurlError, RecipientInvalid
from service.lnurl.fees import FeePolicy
from service.lnurl.payer import LnurlPayer, require_in_range
from service.lnurl.payrequest import PayRequest
from service.lnurl.recipients import DEFAULT_BLINK_DOMAINS, Recipient, RecipientKind, parse_recipient

log = logging.getLogger(__name__)

# outcome ("resolved" | "cached" | "failed"), reason ("ok" or the error's reason)
Observer = Callable[[str, str], None]


class PayRequestCache(Protocol):
    def get(self, recipient: str) -> dict[str, Any] | None: ...

    def put(self, recipient: str, document: dict[str, Any]) -> None: ...


class BlinkUserCheck(Protocol):
    def __call__(self, username: str) -> object:
        """Raises RecipientInvalid when Blink has no such user (other errors propagate)."""


@dataclass(frozen=True)
class Resolution:
    kind: RecipientKind
    normalized: str
    min_sendable_sats: int | None  # None: no limit known (a Blink user)
    max_sendable_sats: int | None
    recipient: Recipient

    def as_json(self) -> dict[str, Any]:
        return {
            "valid": True,
            "kind": str(self.kind),
            "normalized": self.normalized,
            "minSendableSats": self.min_sendable_sats,
            "maxSendableSats": self.max_sendable_sats,
        }


class RecipientResolver:
    def __init__(
        self,
        payer: LnurlPayer,
        *,
        fees: FeePolicy,
        cache: PayRequestCache | None = None,
        blink_domains: Collection[str] = DEFAULT_BLINK_DOMAINS,
        insecure_hosts: Collection[str] = (),
        blink_user_check: BlinkUserCheck | None = None,
        observer: Observer | None = None,
    ) -> None:
        self._payer = payer
        self._fees = fees
        self._cache = cache
        self._blink_domains = frozenset(blink_domains)
        self._insecure_hosts = frozenset(host.lower() for host in insecure_hosts)
        self._blink_user_check = blink_user_check
        self._report = observer if observer is not None else (lambda outcome, reason: None)

    def parse(self, raw: object) -> Recipient:
        """The recipient ``raw`` names (no network call); RecipientInvalid if none."""
        return parse_recipient(raw, blink_domains=self._blink_domains, insecure_hosts=self._insecure_hosts)

    def resolve(self, raw: object, leg_sats: int | None = None) -> Resolution:
        """The recipient and what it accepts; an LnurlError (typed, with a code) when it cannot
        be paid, or not ``leg_sats`` (after the fee reserve)."""
        try:
            recipient = self.parse(raw)
            if recipient.is_blink:
                if self._blink_user_check is not None:
                    self._blink_user_check(recipient.normalized)
                self._report("resolved", "blink")
                return Resolution(recipient.kind, recipient.normalized, None, None, recipient)
            pay_request = self._pay_request(recipient)
            if leg_sats is not None:
                require_in_range(pay_request, self._fees.invoice_sats_for_leg(leg_sats))
        except LnurlError as exc:
            self._report("failed", exc.reason)
            raise
        return Resolution(
            recipient.kind,
            recipient.normalized,
            pay_request.min_sendable_sats,
            pay_request.max_sendable_sats,
            recipient,
        )

    def _pay_request(self, recipient: Recipient) -> PayRequest:
        if self._cache is not None:
            cached = self._cache.get(recipient.normalized)
            if cached is not None:
                try:
                    pay_request = PayRequest(**cached)
                except TypeError:
                    pay_request = None
                if pay_request is not None:
                    self._report("cached", "ok")
                    return pay_request
        pay_request = self._payer.pay_request(recipient)
        self._report("resolved", "ok")
        if self._cache is not None:
            self._cache.put(recipient.normalized, dataclasses.asdict(pay_request))
        return pay_request


def blink_user_check(default_btc_wallet: Callable[[str], str]) -> BlinkUserCheck:
    """A BlinkUserCheck over BlinkClient.default_btc_wallet: an unknown user is RecipientInvalid."""

    def check(username: str) -> object:
        try:
            return default_btc_wallet(username)
        except BlinkRejected:
            raise RecipientInvalid(
                f"no Blink user named {username!r}", reason="blink_user_not_found"
            ) from None

    return check
