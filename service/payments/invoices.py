"""create-invoice: check the merchant and the tip recipients, issue the POS invoice, store the split.

Every check that can fail happens before the invoice exists, so a refused sale leaves nothing
behind at Blink or here. Positive answers (this key owns this wallet; this username has this
BTC wallet) are cached for ten minutes; negative ones never are, so a fix takes effect at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from service.blink import (
    BlinkClient,
    BlinkForbidden,
    BlinkRejected,
    BlinkTimeout,
    BlinkUnauthorized,
    BlinkUnavailable,
)
from service.blink.types import WalletCurrency
from service.domain.clock import Clock, utc_now
from service.domain.errors import (
    InvalidMerchantKey,
    MerchantKeyCannotRead,
    MerchantWalletMismatch,
    UpstreamRejected,
    UpstreamUnavailable,
)
from service.domain.model import NewSplit, Payout, Split
from service.lnurl import Recipient
from service.payments.inputs import InvoiceRequest
from service.payments.ports import SplitSaver, WalletLookups
from service.payments.recipients import MERCHANT_ADDRESS_FIELD, Destination, PayoutPlanner

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InvoiceSettings:
    pos_api_key: str
    pos_wallet_id: str
    ttl_seconds: int
    environment: str


class InvoiceService:
    def __init__(
        self,
        store: SplitSaver,
        blink: BlinkClient,
        lookups: WalletLookups,
        planner: PayoutPlanner,
        fingerprint: Callable[[str], str],
        settings: InvoiceSettings,
        *,
        clock: Clock = utc_now,
    ) -> None:
        self._store = store
        self._blink = blink
        self._lookups = lookups
        self._planner = planner
        self._fingerprint = fingerprint
        self._settings = settings
        self._now = clock

    def create(self, request: InvoiceRequest, *, admit_wallet: Callable[[str], None] | None = None) -> Split:
        """Checks, then issues the POS invoice and stores the split.

        admit_wallet(identity) runs once the merchant is known (its key verified for the wallet,
        or its payout address parsed) and before anything is created: the caller's per-merchant
        rate limit, keyed on the wallet or the normalised address; it raises to refuse.
        """
        recipients = self._planner.merge(request.tip_recipients)
        usernames = [entry.name for entry in recipients if entry.recipient.is_blink]
        merchant, payout_address = None, None
        if request.merchant_payout_address is None:
            fingerprint, known_wallets = self._verified_merchant(request, usernames)
            identity = request.merchant_wallet_id or ""
        else:
            fingerprint = None
            merchant = self._planner.parse(request.merchant_payout_address, field=MERCHANT_ADDRESS_FIELD)
            payout_address = _payout_address(merchant, request.merchant_payout_address)
            identity = merchant.normalized
            known_wallets = self._lookups.recipient_wallets(
                [*usernames, merchant.normalized] if merchant.is_blink else usernames
            )
        if admit_wallet is not None:
            admit_wallet(identity)
        with _upstream("resolving the recipients"):
            if merchant is None:
                base = Destination(request.merchant_wallet_id or "", Payout.BLINK, request.merchant_wallet_id)
            else:
                base = self._planner.destination(merchant, known_wallets, field=MERCHANT_ADDRESS_FIELD)
            legs = self._planner.plan(base, request.base_sats, request.tip_sats, recipients, known_wallets)
        minutes = max(1, self._settings.ttl_seconds // 60)
        with _upstream("creating the invoice"):
            invoice = self._blink.create_invoice(
                self._settings.pos_api_key,
                self._settings.pos_wallet_id,
                request.invoice_sats,
                request.memo or "",
                expires_in_minutes=minutes,
            )
        new_split = NewSplit(
            payment_hash=invoice.payment_hash,
            payment_request=invoice.payment_request,
            invoice_sats=request.invoice_sats,
            base_sats=request.base_sats,
            tip_sats=request.tip_sats,
            tip_percent=request.tip_percent,
            merchant_wallet_id=request.merchant_wallet_id,
            merchant_key_fingerprint=fingerprint,
            merchant_payout_address=payout_address,
            tip_recipients=tuple(entry.as_tip_recipient for entry in recipients),
            legs=legs,
            display_currency=request.display_currency,
            base_amount_display=request.base_amount_display,
            tip_amount_display=request.tip_amount_display,
            memo=request.memo or None,
            environment=self._settings.environment,
            expires_at=self._now() + timedelta(minutes=minutes),
        )
        split = self._store.save(new_split)
        log.info(
            "invoice_created",
            extra={
                "payment_hash": split.payment_hash,
                "invoice_sats": split.invoice_sats,
                "tip_sats": split.tip_sats,
                "recipients": len(recipients),
            },
        )
        return split

    def _verified_merchant(self, request: InvoiceRequest, usernames: list[str]) -> tuple[str, dict[str, str]]:
        """The key's fingerprint once the key is proven to own the wallet (cached positive answers
        first, with the recipients' wallets in the same round trip)."""
        api_key, wallet_id = request.merchant_api_key or "", request.merchant_wallet_id or ""
        fingerprint = self._fingerprint(api_key)
        owner_known, known_wallets = self._lookups.recall(fingerprint, wallet_id, usernames)
        if not owner_known:
            with _upstream("checking the merchant wallet"):
                self._check_merchant_owns_wallet(api_key, wallet_id)
            self._lookups.remember_wallet_owner(fingerprint, wallet_id)
        return fingerprint, known_wallets

    def _check_merchant_owns_wallet(self, api_key: str, wallet_id: str) -> None:
        try:
            wallets = self._blink.wallets(api_key)
        except BlinkForbidden as exc:
            raise MerchantKeyCannotRead(
                "This API key may not read its account at Blink: create a key with the READ scope "
                "(READ alone is enough)."
            ) from exc
        except BlinkUnauthorized as exc:
            raise InvalidMerchantKey("Blink did not accept the merchant API key.") from exc
        owned = {wallet.id: wallet.currency for wallet in wallets}
        if wallet_id not in owned:
            raise MerchantWalletMismatch("The wallet does not belong to the account of this API key.")
        if owned[wallet_id] != WalletCurrency.BTC:
            raise MerchantWalletMismatch("Sales are forwarded in sats: choose the account's BTC wallet.")


def _payout_address(merchant: Recipient, sent: str) -> str:
    """What the split records: the normalised address; for a Blink user, the address as sent
    (lowercase), since its normal form is the bare username."""
    return sent.strip().lower() if merchant.is_blink else merchant.normalized


@contextmanager
def _upstream(doing: str) -> Iterator[None]:
    """Turns Blink trouble during create-invoice into the payment layer's typed errors."""
    try:
        yield
    except BlinkUnavailable as exc:
        raise UpstreamUnavailable(
            f"Blink is not answering ({doing}); try again.",
            timed_out=isinstance(exc, BlinkTimeout),
            details={"retryable": True},
        ) from exc
    except BlinkUnauthorized as exc:
        # The merchant key is checked on its own; this is the POS key, an operator problem.
        raise UpstreamRejected(f"Blink refused the service's credentials ({doing}).") from exc
    except BlinkRejected as exc:
        raise UpstreamRejected(f"Blink refused the request ({doing}): {exc.message}") from exc
