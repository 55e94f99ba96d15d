"""The simulator's bank: accounts, wallets, invoices, foreign (LNURL) wallets and the ledger, in memory.

Every mutation happens under one lock, so concurrent requests can neither create nor lose a sat:
money enters only through customer payments (and an account's opening balance, recorded in the
ledger as a customer payment) and leaves only through external payments (amount and routing fee);
every other transfer debits one wallet by what it credits another. How money moves: payments.py.
"""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from coincurve import PrivateKey

from blinksim import rules
from blinksim.invoices import encode_invoice
from blinksim.model import (
    BTC,
    SCOPES,
    SUCCESS,
    USD,
    Account,
    FeePolicy,
    ForeignInvoice,
    ForeignWallet,
    Hold,
    Invoice,
    SimError,
    Transfer,
    Wallet,
)
from blinksim.payments import PaymentsMixin

SettledListener = Callable[[Invoice, Transfer], None]


@dataclass
class SimState(PaymentsMixin):
    node_key: PrivateKey = field(default_factory=PrivateKey)
    clock: Callable[[], float] = time.time
    on_settled: SettledListener | None = None
    # The secret of the node outside Blink that signs the foreign (LNURL) wallets' invoices; plain
    # bytes, so the state pickles (a coincurve key does not).
    outside_secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._accounts: dict[str, Account] = {}
        self._accounts_by_key: dict[str, Account] = {}
        self._accounts_by_username: dict[str, Account] = {}
        self._wallets: dict[str, Wallet] = {}
        self._invoices_by_hash: dict[str, Invoice] = {}
        self._invoices_by_request: dict[str, Invoice] = {}
        self._ledger: list[Transfer] = []
        self._ledger_index: dict[str, int] = {}  # transfer id -> position in the ledger
        self._outgoing: dict[str, str] = {}  # payment hash -> the latest external payment's transfer id
        self._holds: dict[str, Hold] = {}  # transfer id -> a held payment
        self.fees = FeePolicy()
        self._foreign_wallets: dict[str, ForeignWallet] = {}
        self._foreign_invoices_by_hash: dict[str, ForeignInvoice] = {}
        self._foreign_invoices_by_request: dict[str, ForeignInvoice] = {}

    # accounts and wallets ------------------------------------------------------------------------

    def create_account(self, username: str, balance: int = 0, scopes: object = SCOPES) -> Account:
        if not rules.is_valid_username(username):
            raise SimError("INVALID_INPUT", "Invalid value for Username")
        if not rules.is_sat_amount(balance):
            raise SimError("INVALID_INPUT", "balance must be a non-negative integer (sats)")
        if not isinstance(scopes, list | tuple) or not scopes or not all(s in SCOPES for s in scopes):
            raise SimError("INVALID_SCOPES", f"scopes must be a non-empty subset of {', '.join(SCOPES)}")
        now = self.clock()
        account = Account(
            id=str(uuid.uuid4()),
            username=username.lower(),
            api_key="blink_" + secrets.token_urlsafe(36),
            btc_wallet_id=str(uuid.uuid4()),
            usd_wallet_id=str(uuid.uuid4()),
            created_at=now,
            scopes=tuple(scope for scope in SCOPES if scope in scopes),
        )
        with self._lock:
            if account.username in self._accounts_by_username:
                raise SimError("USERNAME_UNAVAILABLE", "Username is already taken")
            self._accounts[account.id] = account
            self._accounts_by_key[account.api_key] = account
            self._accounts_by_username[account.username] = account
            self._wallets[account.btc_wallet_id] = Wallet(account.btc_wallet_id, account.id, BTC)
            self._wallets[account.usd_wallet_id] = Wallet(account.usd_wallet_id, account.id, USD)
            if balance:
                self._credit_from_outside(account.btc_wallet_id, balance, None, "opening balance", now)
        return account

    def revoke_key(self, api_key: str) -> bool:
        """The key stops working, as when its owner deletes it in the Blink dashboard."""
        with self._lock:
            return self._accounts_by_key.pop(api_key, None) is not None

    def account_by_key(self, api_key: str) -> Account | None:
        return self._accounts_by_key.get(api_key)

    def account_by_username(self, username: str) -> Account | None:
        return self._accounts_by_username.get(username.lower())

    def account(self, account_id: str) -> Account | None:
        return self._accounts.get(account_id)

    def wallet(self, wallet_id: str) -> Wallet | None:
        return self._wallets.get(wallet_id)

    def wallets_of(self, account: Account) -> list[Wallet]:
        return [self._wallets[account.btc_wallet_id], self._wallets[account.usd_wallet_id]]

    # invoices ------------------------------------------------------------------------------------

    def create_invoice(self, wallet_id: str, sats: object, memo: object, expires_in: object) -> Invoice:
        """Issue an invoice on a BTC wallet (ownership is the caller's check). Raises SimError."""
        wallet = self._wallets.get(wallet_id) if isinstance(wallet_id, str) else None
        if wallet is None:
            raise SimError("INVALID_INPUT", "Invalid walletId")
        if wallet.currency != BTC:
            raise SimError("INVALID_INPUT", "Wallet is not a BTC wallet")
        if not rules.is_sat_amount(sats) or sats == 0:
            raise SimError("INVALID_INPUT", "A valid satoshi amount is required")
        if not rules.is_valid_memo(memo):
            raise SimError("INVALID_INPUT", f"Memo is too long (max {rules.MAX_MEMO_BYTES} bytes)")
        if expires_in is None:
            expires_in = rules.DEFAULT_BTC_EXPIRY_MINUTES
        if not rules.is_sat_amount(expires_in) or not 1 <= expires_in <= rules.MAX_EXPIRY_MINUTES:
            raise SimError("INVALID_INPUT", "Invalid value for Minutes")
        now = self.clock()
        encoded = encode_invoice(
            self.node_key,
            amount_msat=sats * 1000,
            description=memo or "",
            expiry_seconds=expires_in * 60,
            timestamp=int(now),
        )
        invoice = Invoice(
            payment_hash=encoded.payment_hash,
            payment_request=encoded.payment_request,
            preimage=encoded.preimage,
            payment_secret=encoded.payment_secret,
            wallet_id=wallet.id,
            sats=sats,
            memo=memo or "",
            created_at=now,
            expires_at=now + expires_in * 60,
        )
        with self._lock:
            self._invoices_by_hash[invoice.payment_hash] = invoice
            self._invoices_by_request[invoice.payment_request] = invoice
        return invoice

    def invoice_by_hash(self, payment_hash: str) -> Invoice | None:
        return self._invoices_by_hash.get(payment_hash.lower()) if isinstance(payment_hash, str) else None

    def invoice_by_request(self, payment_request: str) -> Invoice | None:
        if not isinstance(payment_request, str):
            return None
        return self._invoices_by_request.get(payment_request.strip().lower())

    def expire_invoice(self, invoice: Invoice) -> None:
        """Make an unpaid invoice expire now (control API: tests need not wait a minute)."""
        with self._lock:
            if invoice.paid_at is None:
                invoice.expires_at = min(invoice.expires_at, self.clock())

    # foreign (LNURL) wallets ------------------------------------------------------------------------

    def add_foreign_wallet(self, wallet: ForeignWallet) -> bool:
        """False when the name is taken."""
        with self._lock:
            if wallet.name in self._foreign_wallets:
                return False
            self._foreign_wallets[wallet.name] = wallet
            return True

    def foreign_wallet(self, name: str) -> ForeignWallet | None:
        return self._foreign_wallets.get(name)

    def foreign_wallets(self) -> list[ForeignWallet]:
        with self._lock:
            return list(self._foreign_wallets.values())

    def update_foreign_wallet(self, name: str, **changes: object) -> ForeignWallet | None:
        with self._lock:
            wallet = self._foreign_wallets.get(name)
            if wallet is not None:
                for key, value in changes.items():
                    setattr(wallet, key, value)
            return wallet

    def count_foreign_request(self, wallet: ForeignWallet, step: str, comment: str | None = None) -> None:
        with self._lock:
            if step == "callback":
                wallet.callbacks += 1
                if comment:
                    wallet.comments.append(comment)
            else:
                wallet.pay_requests += 1

    def issue_foreign_invoice(
        self,
        wallet: ForeignWallet,
        amount_msat: int | None,
        *,
        description: str = "",
        description_hash: bytes | None = None,
        expiry_seconds: int = 600,
        age_seconds: int = 0,
    ) -> ForeignInvoice:
        """An invoice signed by the outside node, paid to `wallet` (`age_seconds` backdates it)."""
        timestamp = int(self.clock()) - age_seconds
        encoded = encode_invoice(
            PrivateKey(self.outside_secret),
            amount_msat=amount_msat,
            description=description,
            description_hash=description_hash,
            expiry_seconds=expiry_seconds,
            timestamp=timestamp,
        )
        invoice = ForeignInvoice(
            payment_hash=encoded.payment_hash,
            payment_request=encoded.payment_request,
            preimage=encoded.preimage,
            wallet_name=wallet.name,
            amount_msat=amount_msat,
            expires_at=timestamp + expiry_seconds,
        )
        with self._lock:
            self._foreign_invoices_by_hash[invoice.payment_hash] = invoice
            self._foreign_invoices_by_request[invoice.payment_request] = invoice
            wallet.invoices.append(invoice.payment_hash)
        return invoice

    def foreign_invoice_by_hash(self, payment_hash: str) -> ForeignInvoice | None:
        return self._foreign_invoices_by_hash.get(payment_hash)

    def external_status(self, payment_hash: str) -> str | None:
        """The status of the latest external payment of a hash (None: never paid from Blink)."""
        with self._lock:
            transfer_id = self._outgoing.get(payment_hash)
            return None if transfer_id is None else self._ledger[self._ledger_index[transfer_id]].status

    # the ledger -----------------------------------------------------------------------------------

    def ledger(self) -> list[Transfer]:
        with self._lock:
            return list(self._ledger)

    def transfer(self, transfer_id: str) -> Transfer | None:
        with self._lock:
            index = self._ledger_index.get(transfer_id)
            return None if index is None else self._ledger[index]

    def transfers_of(self, wallet_id: str, payment_hash: str) -> list[Transfer]:
        """The wallet's transfers for a payment hash, newest first: sent (any status) and received."""
        with self._lock:
            return [
                t
                for t in reversed(self._ledger)
                if t.payment_hash == payment_hash
                and (t.from_wallet_id == wallet_id or (t.to_wallet_id == wallet_id and t.status == SUCCESS))
            ]
