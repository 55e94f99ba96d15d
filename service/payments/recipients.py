"""Who a sale pays (DESIGN §4, §8): the request's recipients and the merchant's destination turned
into planned legs, each paid inside Blink or by LNURL.

A recipient is a Blink username, a Lightning Address or an LNURL, in one spelling
(RecipientResolver.parse), so the same recipient named twice is one recipient with the shares
summed. A Blink user (a Blink-domain address included) is paid at the BTC wallet resolved now;
any other recipient is resolved now with its leg's sats (the share minus the fee reserve must be
in its minSendable..maxSendable), so a recipient that cannot take its share refuses the sale
before any invoice exists. Split profiles check their recipients with the same planner.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from service.blink import BlinkRejected
from service.domain.errors import RecipientRefused, TipRecipientIsPosWallet, UnknownTipRecipient
from service.domain.model import LegKind, Payout, PlannedLeg, TipRecipient
from service.lnurl import LnurlError, Recipient, RecipientResolver
from service.payments.parallel import run_each
from service.payments.splitting import plan_legs

MERCHANT_ADDRESS_FIELD = "merchantLightningAddress"  # the request field naming a keyless merchant
WalletOf = Callable[[str], str]  # a Blink username -> its default BTC wallet (BlinkRejected if none)


@dataclass(frozen=True)
class SaleRecipient:
    """A recipient as parsed (kind and one spelling) with its summed share."""

    recipient: Recipient
    share: Fraction

    @property
    def name(self) -> str:
        return self.recipient.normalized

    @property
    def as_tip_recipient(self) -> TipRecipient:
        return TipRecipient(self.name, self.share)


@dataclass(frozen=True)
class Destination:
    """Where one leg goes: its recipient column, how it is paid, the Blink wallet if any, and the
    parsed recipient of an LNURL leg (resolved with the leg's sats)."""

    recipient: str
    payout: Payout
    wallet_id: str | None = None
    lnurl: Recipient | None = None


class PayoutPlanner:
    def __init__(
        self,
        resolver: RecipientResolver,
        wallet_of: WalletOf,
        *,
        pos_wallet_id: str,
        remember_wallet: Callable[[str, str], None] | None = None,
    ) -> None:
        self._resolver = resolver
        self._wallet_of = wallet_of
        self._pos_wallet_id = pos_wallet_id
        self._remember_wallet = remember_wallet

    def merge(self, recipients: Sequence[TipRecipient], field: str = "tipRecipients") -> list[SaleRecipient]:
        """The recipients parsed (no network call), the same one named twice merged in the place
        it first appears; RecipientRefused (recipient_invalid) naming one that is no recipient."""
        merged: dict[str, SaleRecipient] = {}
        for index, entry in enumerate(recipients):
            parsed = self.parse(entry.username, field=f"{field}.{index}.username")
            earlier = merged.get(parsed.normalized)
            share = entry.share + (earlier.share if earlier else 0)
            merged[parsed.normalized] = SaleRecipient(earlier.recipient if earlier else parsed, share)
        return list(merged.values())

    def parse(self, raw: str, *, field: str) -> Recipient:
        try:
            return self._resolver.parse(raw)
        except LnurlError as error:
            raise _refused(error, raw, field) from None

    def check(
        self, recipients: Sequence[TipRecipient], field: str = "recipients"
    ) -> tuple[TipRecipient, ...]:
        """Recipients saved for later sales (split profiles): merged, each Blink user known to
        Blink and each other recipient reachable (no amount is known yet)."""
        merged = self.merge(recipients, field)
        for entry in merged:
            destination = self.destination(entry.recipient, {}, field=field)
            if destination.lnurl is not None:
                self._resolve(destination.lnurl, None, field)
        return tuple(entry.as_tip_recipient for entry in merged)

    def destination(
        self, recipient: Recipient, known_wallets: Mapping[str, str], *, field: str
    ) -> Destination:
        """A Blink user's wallet (resolved now; never the POS wallet) or the recipient's LNURL."""
        if not recipient.is_blink:
            return Destination(recipient.normalized, Payout.LNURL, lnurl=recipient)
        wallet_id = self.blink_wallet(recipient.normalized, known_wallets, field=field)
        if wallet_id == self._pos_wallet_id:
            # Paying the POS wallet from itself can never succeed (Blink: CANT_PAY_SELF).
            raise TipRecipientIsPosWallet(
                f"Recipient '{recipient.normalized}' is this point of sale's own wallet.",
                details={"username": recipient.normalized, "field": field},
            )
        return Destination(recipient.normalized, Payout.BLINK, wallet_id)

    def plan(
        self,
        base: Destination,
        base_sats: int,
        tip_sats: int,
        recipients: Sequence[SaleRecipient],
        known_wallets: Mapping[str, str],
    ) -> tuple[PlannedLeg, ...]:
        """Every leg of the sale: the base (if any), then one per tipped recipient, in order. Every
        Blink recipient's wallet is resolved, then each LNURL leg with its sats. Blink trouble
        propagates (the caller maps it)."""
        destinations = {
            entry.name: self.destination(
                entry.recipient, known_wallets, field=f"tipRecipients.{index}.username"
            )
            for index, entry in enumerate(recipients)
        }
        tips = [entry.as_tip_recipient for entry in recipients]
        planned = [
            (leg, base if leg.kind is LegKind.BASE else destinations[leg.recipient])
            for leg in plan_legs(base.recipient, base_sats, tip_sats, tips)
        ]
        self._resolve_all(
            [
                (destination.lnurl, leg.sats, _field_of(leg))
                for leg, destination in planned
                if destination.lnurl is not None
            ]
        )
        return tuple(
            dataclasses.replace(
                leg,
                recipient=destination.recipient,
                recipient_wallet_id=destination.wallet_id,
                payout=destination.payout,
            )
            for leg, destination in planned
        )

    def blink_wallet(self, username: str, known_wallets: Mapping[str, str], *, field: str) -> str:
        if username in known_wallets:
            return known_wallets[username]
        try:
            wallet_id = self._wallet_of(username)
        except BlinkRejected as exc:
            raise UnknownTipRecipient(
                f"{_who(field)} '{username}' is not a Blink user with a BTC wallet.",
                details={"username": username, "field": field},
            ) from exc
        if self._remember_wallet is not None:
            self._remember_wallet(username, wallet_id)
        return wallet_id

    def _resolve_all(self, lookups: list[tuple[Recipient, int, str]]) -> None:
        """Every LNURL leg resolved side by side (each bounded by the fetch timeout, so a sale waits
        for the slowest, not the sum); the first refusal in leg order is raised."""
        run_each(lambda lookup: self._resolve(*lookup), lookups, len(lookups))

    def _resolve(self, recipient: Recipient, sats: int | None, field: str) -> None:
        try:
            self._resolver.resolve(recipient.normalized, sats)
        except LnurlError as error:
            raise _refused(error, recipient.normalized, field) from None


def _who(field: str) -> str:
    """How a message names the recipient: the merchant's own address is no tip recipient."""
    return MERCHANT_ADDRESS_FIELD if field == MERCHANT_ADDRESS_FIELD else "Tip recipient"


def _field_of(leg: PlannedLeg) -> str:
    return MERCHANT_ADDRESS_FIELD if leg.kind is LegKind.BASE else "tipRecipients"


def _refused(error: LnurlError, recipient: str, field: str) -> RecipientRefused:
    details: dict[str, Any] = {"recipient": recipient, "reason": error.reason, "field": field}
    return RecipientRefused(error.code, f"{recipient}: {error.message}", details=details)
