"""The JSON shapes of Blink's GraphQL objects, built from the bank's records (field names as in the schema).

A callable value is a field with arguments: graphql-core's default resolver calls it with the arguments.
"""

from __future__ import annotations

from decimal import Decimal

from graphql import GraphQLError, GraphQLResolveInfo

from blinksim.model import BTC, SUCCESS, Account, Invoice, Transfer, Wallet
from blinksim.state import SimState

# A fixed display price (1 sat = 0.1 US cent) so display fields carry plausible values.
_DISPLAY_CENTS_PER_SAT = Decimal("0.1")
SEND = "SEND"
RECEIVE = "RECEIVE"


def top_level_error(message: str, code: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code})


def invoice_json(invoice: Invoice, now: float) -> dict:
    return {
        "__typename": "LnInvoice",
        "createdAt": int(invoice.created_at),
        "externalId": invoice.payment_hash,
        "paymentHash": invoice.payment_hash,
        "paymentRequest": invoice.payment_request,
        "paymentSecret": invoice.payment_secret,
        "paymentStatus": invoice.status(now),
        "satoshis": invoice.sats,
    }


def public_wallet_json(wallet: Wallet) -> dict:
    return {
        "__typename": "PublicWallet",
        "id": wallet.id,
        "currency": wallet.currency,
        "walletCurrency": wallet.currency,
    }


def wallet_json(state: SimState, wallet: Wallet) -> dict:
    def transactions_by_payment_hash(_info: GraphQLResolveInfo, paymentHash: str) -> list[dict]:  # noqa: N803
        transfers = state.transfers_of(wallet.id, paymentHash.lower())
        return [
            transaction_json(state, t, SEND if t.from_wallet_id == wallet.id else RECEIVE) for t in transfers
        ]

    return {
        "__typename": "BTCWallet" if wallet.currency == BTC else "UsdWallet",
        "id": wallet.id,
        "accountId": wallet.account_id,
        "balance": wallet.balance,
        "pendingIncomingBalance": 0,
        "walletCurrency": wallet.currency,
        "transactionsByPaymentHash": transactions_by_payment_hash,
    }


def account_json(state: SimState, account: Account) -> dict:
    wallets = state.wallets_of(account)
    default = state.wallet(account.usd_wallet_id)  # like new Blink accounts: USD is the default

    def wallet_by_id(_info: GraphQLResolveInfo, walletId: str) -> dict:  # noqa: N803 (GraphQL name)
        for wallet in wallets:
            if wallet.id == walletId:
                return wallet_json(state, wallet)
        raise top_level_error("Invalid walletId for this account", "INVALID_INPUT")

    return {
        "__typename": "ConsumerAccount",
        "id": account.id,
        "wallets": [wallet_json(state, wallet) for wallet in wallets],
        "walletById": wallet_by_id,
        "defaultWallet": public_wallet_json(default),
        "defaultWalletId": default.id,
        "displayCurrency": "USD",
        "level": "ONE",
    }


def _display_amount(sats: int) -> str:
    return str((sats * _DISPLAY_CENTS_PER_SAT / 100).quantize(Decimal("0.01")))


def _preimage(state: SimState, transfer: Transfer) -> str | None:
    """Known once the payment succeeded, for invoices the simulator or a foreign wallet issued."""
    if transfer.status != SUCCESS or transfer.payment_hash is None:
        return None
    issued = state.invoice_by_hash(transfer.payment_hash) or state.foreign_invoice_by_hash(
        transfer.payment_hash
    )
    return issued.preimage if issued else None


def _settlement_via(state: SimState, transfer: Transfer, direction: str) -> dict:
    counterparty_wallet = transfer.to_wallet_id if direction == SEND else transfer.from_wallet_id
    if counterparty_wallet is None:  # over Lightning, to or from outside Blink
        return {
            "__typename": "SettlementViaLn",
            "paymentSecret": None,
            "preImage": _preimage(state, transfer),
        }
    wallet = state.wallet(counterparty_wallet)
    counterparty = state.account(wallet.account_id) if wallet else None
    return {
        "__typename": "SettlementViaIntraLedger",
        "counterPartyUsername": counterparty.username if counterparty else None,
        "counterPartyWalletId": counterparty_wallet,
        "preImage": _preimage(state, transfer),
    }


def transaction_json(state: SimState, transfer: Transfer, direction: str, status: str | None = None) -> dict:
    """Blink's Transaction: a send's settlementAmount is minus the amount and the fee it cost."""
    amount = -(transfer.sats + transfer.fee_sats) if direction == SEND else transfer.sats
    fee = transfer.fee_sats if direction == SEND else 0
    return {
        "__typename": "Transaction",
        "id": transfer.id,
        "createdAt": int(transfer.at),
        "direction": direction,
        "externalId": None,
        "initiationVia": {
            "__typename": "InitiationViaLn",
            "paymentHash": transfer.payment_hash,
            "paymentRequest": transfer.payment_request,
        },
        "memo": transfer.memo or None,
        "settlementAmount": amount,
        "settlementCurrency": BTC,
        "settlementDisplayAmount": _display_amount(amount),
        "settlementDisplayCurrency": "USD",
        "settlementDisplayFee": _display_amount(fee),
        "settlementFee": fee,
        "settlementPrice": {
            "__typename": "PriceOfOneSettlementMinorUnitInDisplayMinorUnit",
            "base": 100_000_000_000,
            "offset": 12,
            "currencyUnit": "MINOR",
            "formattedAmount": "0.1",
        },
        "settlementVia": _settlement_via(state, transfer, direction),
        "status": status or transfer.status,
    }


def status_json(invoice: Invoice, now: float) -> dict:
    status = invoice.status(now)
    return {
        "paymentHash": invoice.payment_hash,
        "paymentRequest": invoice.payment_request,
        "paymentPreimage": invoice.preimage if status == "PAID" else None,
        "status": status,
    }
