"""What the payment rules need from the layers below, as typing.Protocol ports.

The store satisfies them (SplitStore, PaymentLocks, LookupCache in service/store/), so a reader
follows a payment hash from a view through InvoiceService or Forwarder to the store method
named here, and from there to its statement in sql/queries/. This layer never imports the store.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Protocol

from service.domain.model import Leg, LegInvoice, NewSplit, Split


class SplitSaver(Protocol):
    def save(self, new: NewSplit) -> Split: ...


class WalletLookups(Protocol):
    """Cached positive answers of create-invoice's checks (a key owns a wallet; a user's wallet)."""
    def recall(
        self, fingerprint: str, wallet_id: str, usernames: Sequence[str]
    ) -> tuple[bool, dict[str, str]]: ...
    def recipient_wallets(self, usernames: Sequence[str]) -> dict[str, str]: ...
    def remember_wallet_owner(self, fingerprint: str, wallet_id: str) -> None: ...


class ForwardingLocks(Protocol):
    """The fast-path lock: a token, False when another holder has it, None when it is unknown."""
    def acquire(self, payment_hash: str) -> str | bool | None: ...
    def release(self, payment_hash: str, token: str) -> None: ...


class ForwardingStore(Protocol):
    """Reads and every state change the forwarding engine makes to a split and its legs."""
    def get_fresh(self, payment_hash: str) -> Split | None: ...
    def claim(self, payment_hash: str, owner: str, lease_seconds: float) -> Split | None: ...
    def mark_paid_and_claim(
        self, payment_hash: str, source: str, owner: str, lease_seconds: float
    ) -> Split | None: ...
    def release(self, payment_hash: str, owner: str, error: str | None = None) -> bool: ...
    def complete(
        self,
        payment_hash: str,
        owner: str,
        paid_leg_ids: Sequence[int] = (),
        fees: Mapping[int, int] | None = None,
    ) -> Split: ...
    def fail(self, payment_hash: str, error: str, owner: str | None = None) -> Split | None: ...
    def start_sending(
        self, payment_hash: str, invoices: Mapping[int, LegInvoice], leg_ids: Sequence[int]
    ) -> list[Leg]: ...
    def mark_legs_succeeded(
        self, leg_ids: Sequence[int], fees: Mapping[int, int] | None = None
    ) -> list[Leg]: ...
    def mark_leg_failed(self, leg_id: int, error: str, next_attempt_at: datetime | None) -> Leg | None: ...
    def discard_expired_leg_invoice(self, leg_id: int, payment_hash: str) -> Leg | None: ...
    def legs_holding_invoices(self, payment_hashes: Collection[str]) -> dict[str, set[int]]: ...
