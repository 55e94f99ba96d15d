"""The simulator's bank: accounts, wallets, invoices and the transfer ledger, all in memory.

Every mutation happens under one lock, so concurrent requests can neither create nor lose a sat:
money enters only through customer payments (and an account's opening balance, recorded in the
ledger as a customer payment), and every other transfer debits one wallet by what it credits another.
"""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from coincurve import PrivateKey

from blinksim import rules
from blinksim.invoices import encode_invoice

BTC = "BTC"
USD = "USD"
# An API key's scopes, as Blink names them: READ (me, balances, transactions), RECEIVE (invoices on the
# key's own wallets), WRITE (payments and their fee probes).
SCOPES = ("READ", "RECEIVE", "WRITE")


class SimError(Exception):
    """A rejection Blink reports as a payload error: `code` is Blink's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Wallet:
    id: str
    account_id: str
    currency: str
    balance: int = 0


@dataclass
class Account:
    id: str
    username: str
    api_key: str
    btc_wallet_id: str
    usd_wallet_id: str
    created_at: float
    scopes: tuple[str, ...] = SCOPES


@dataclass
class Invoice:
    payment_hash: str
    payment_request: str
    preimage: str
    payment_secret: str
    wallet_id: str
    sats: int
    memo: str
    created_at: float
    expires_at: float
    paid_at: float | None = None

    def status(self, now: float) -> str:
        if self.paid_at is not None:
            return "PAID"
        return "EXPIRED" if now >= self.expires_at else "PENDING"


@dataclass(frozen=True)
class Transfer:
    id: str
    payment_hash: str | None
    from_wallet_id: str | None  # None: money from outside (a customer)
    to_wallet_id: str
    sats: int
    memo: str
    at: float

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "paymentHash": self.payment_hash,
            "fromWalletId": self.from_wallet_id,
            "toWalletId": self.to_wallet_id,
            "sats": self.sats,
            "memo": self.memo,
            "at": iso_time(self.at),
        }


@dataclass(frozen=True)
class Payment:
    """The outcome of paying an invoice: SUCCESS with its transfer, or ALREADY_PAID and nothing moved."""

    status: str
    invoice: Invoice
    transfer: Transfer | None = None


def iso_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


SettledListener = Callable[[Invoice, Transfer], None]


@dataclass
class SimState:
    node_key: PrivateKey = field(default_factory=PrivateKey)
    clock: Callable[[], float] = time.time
    on_settled: SettledListener | None = None

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._accounts: dict[str, Account] = {}
        self._accounts_by_key: dict[str, Account] = {}
        self._accounts_by_username: dict[str, Account] = {}
        self._wallets: dict[str, Wallet] = {}
        self._invoices_by_hash: dict[str, Invoice] = {}
        self._invoices_by_request: dict[str, Invoice] = {}
        self._ledger: list[Transfer] = []

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

    # payments ------------------------------------------------------------------------------------

    def pay_invoice(self, invoice: Invoice, payer_wallet_id: str | None, memo: str | None = None) -> Payment:
        """Pay `invoice` from a wallet, or from outside money when `payer_wallet_id` is None.

        Atomic: either the invoice becomes PAID and exactly its amount moves, or nothing changes.
        Raises SimError for a payment Blink would answer FAILURE.
        """
        with self._lock:
            now = self.clock()
            if invoice.paid_at is not None:
                return Payment("ALREADY_PAID", invoice)
            if now >= invoice.expires_at:
                raise SimError("INVOICE_EXPIRED", "Invoice is expired")
            if payer_wallet_id is None:
                transfer = self._credit_from_outside(
                    invoice.wallet_id, invoice.sats, invoice.payment_hash, invoice.memo, now
                )
            else:
                transfer = self._move(payer_wallet_id, invoice, memo, now)
            invoice.paid_at = now
        if self.on_settled is not None:
            self.on_settled(invoice, transfer)
        return Payment("SUCCESS", invoice, transfer)

    def _move(self, payer_wallet_id: str, invoice: Invoice, memo: str | None, now: float) -> Transfer:
        payer = self._wallets[payer_wallet_id]
        if payer.id == invoice.wallet_id:
            raise SimError("CANT_PAY_SELF", "User tried to pay themselves")
        if payer.currency != BTC:
            raise SimError("INVALID_INPUT", "Wallet is not a BTC wallet")
        if payer.balance < invoice.sats:
            raise SimError(
                "INSUFFICIENT_BALANCE",
                f"Payment amount '{invoice.sats}' sats exceeds balance '{payer.balance}'",
            )
        payer.balance -= invoice.sats
        self._wallets[invoice.wallet_id].balance += invoice.sats
        return self._record(
            payer.id, invoice.wallet_id, invoice.sats, invoice.payment_hash, memo or invoice.memo, now
        )

    def _credit_from_outside(
        self, wallet_id: str, sats: int, payment_hash: str | None, memo: str, now: float
    ) -> Transfer:
        self._wallets[wallet_id].balance += sats
        return self._record(None, wallet_id, sats, payment_hash, memo, now)

    def _record(
        self,
        source: str | None,
        target: str,
        sats: int,
        payment_hash: str | None,
        memo: str | None,
        now: float,
    ) -> Transfer:
        transfer = Transfer(
            id=uuid.uuid4().hex[:24],
            payment_hash=payment_hash,
            from_wallet_id=source,
            to_wallet_id=target,
            sats=sats,
            memo=memo or "",
            at=now,
        )
        self._ledger.append(transfer)
        return transfer

    def ledger(self) -> list[Transfer]:
        with self._lock:
            return list(self._ledger)
