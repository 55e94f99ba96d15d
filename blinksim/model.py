"""The simulator's records: plain dataclasses (picklable), no behaviour beyond small derived values."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

BTC = "BTC"
USD = "USD"
# An API key's scopes, as Blink names them: READ (me, balances, transactions), RECEIVE (invoices on the
# key's own wallets), WRITE (payments and their fee probes).
SCOPES = ("READ", "RECEIVE", "WRITE")

# Transaction states, Blink's TxStatus.
SUCCESS = "SUCCESS"
PENDING = "PENDING"
FAILURE = "FAILURE"


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
    in_flight: str | None = None  # the id of a held (PENDING) payment of this invoice

    def status(self, now: float) -> str:
        if self.paid_at is not None:
            return "PAID"
        return "EXPIRED" if now >= self.expires_at else "PENDING"


@dataclass(frozen=True)
class Transfer:
    """One ledger entry. The payer is debited `sats + fee_sats` unless the status is FAILURE (refunded);
    the target is credited `sats` once the status is SUCCESS. `to_wallet_id` None: paid out of the
    simulator (an external payment, the fee to the network); `from_wallet_id` None: outside money in."""

    id: str
    payment_hash: str | None
    from_wallet_id: str | None
    to_wallet_id: str | None
    sats: int
    memo: str
    at: float
    fee_sats: int = 0
    status: str = SUCCESS
    payment_request: str | None = None

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "paymentHash": self.payment_hash,
            "fromWalletId": self.from_wallet_id,
            "toWalletId": self.to_wallet_id,
            "sats": self.sats,
            "feeSats": self.fee_sats,
            "status": self.status,
            "memo": self.memo,
            "at": iso_time(self.at),
        }


@dataclass(frozen=True)
class Payment:
    """The outcome of a payment: SUCCESS or PENDING with its transfer, or ALREADY_PAID (nothing moved)."""

    status: str
    transfer: Transfer | None = None
    invoice: Invoice | None = None  # None for an external payment


@dataclass
class FeePolicy:
    """Routing fee of an external payment: base + ceil(sats * ppm / 1e6)."""

    base_sats: int = 1
    ppm: int = 5_000

    def fee(self, sats: int) -> int:
        return self.base_sats + -(-sats * self.ppm // 1_000_000)


@dataclass
class Hold:
    """A payment held PENDING, settled later (by a timer or the control API) to `outcome`."""

    transfer_id: str
    outcome: str  # SUCCESS or FAILURE
    settle_at: float | None  # None: only on a control call


@dataclass
class ForeignInvoice:
    """An invoice issued outside Blink (by a foreign LNURL wallet): paying it is an external payment."""

    payment_hash: str
    payment_request: str
    preimage: str
    wallet_name: str
    amount_msat: int | None
    expires_at: float


@dataclass
class ForeignWallet:
    """A Lightning wallet outside Blink with an LNURL-pay endpoint, and how it misbehaves (`mode`)."""

    name: str
    min_sendable: int  # msat
    max_sendable: int  # msat
    comment_allowed: int
    mode: str = "normal"
    step: str = "both"  # where error, slow, oversized, not_json and redirect act: payRequest, callback, both
    delay_ms: int = 3_000
    http_status: int = 200
    redirect_to: str = "http://169.254.169.254/latest/meta-data/"
    balance: int = 0  # sats received from Blink wallets
    pay_requests: int = 0
    callbacks: int = 0
    comments: list[str] = field(default_factory=list)
    invoices: list[str] = field(default_factory=list)  # payment hashes issued, in order


def iso_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
