"""Resolvers for the Blink operations the simulator answers, shaped as Blink shapes them.

Rejections Blink reports inside a mutation's payload (`errors: [{message, code, path}]`) come back
that way; authentication failures and unknown usernames are top-level GraphQL errors, as on Blink.
Root fields the simulator does not implement answer a top-level NOT_IMPLEMENTED error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from graphql import GraphQLError, GraphQLResolveInfo, GraphQLSchema

from blinksim import rules
from blinksim.faults import Fault
from blinksim.state import BTC, Account, Invoice, SimError, SimState, Transfer, Wallet

PAYMENT_SEND = "lnInvoicePaymentSend"
# A fixed display price (1 sat = 0.1 US cent) so display fields carry plausible values.
_DISPLAY_CENTS_PER_SAT = Decimal("0.1")


@dataclass
class RequestContext:
    """What resolvers know about one HTTP request: the caller and the faults that hit it."""

    state: SimState
    account: Account | None
    faults: list[Fault] = field(default_factory=list)

    def fault(self, operation: str, mode: str) -> bool:
        return any(f.mode == mode and f.operation in ("*", operation) for f in self.faults)


def _ctx(info: GraphQLResolveInfo) -> RequestContext:
    return info.context


def top_level_error(message: str, code: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code})


def _require_account(info: GraphQLResolveInfo, scope: str | None) -> Account:
    """The caller's account, if the request carried a key with `scope` (None: any key); Blink's shield
    refuses otherwise, before the operation runs."""
    account = _ctx(info).account
    if account is None or (scope is not None and scope not in account.scopes):
        raise top_level_error("Not authorized", "NOT_AUTHORIZED")
    return account


def _payload_error(message: str, code: str) -> dict:
    return {"__typename": "GraphQLApplicationError", "message": message, "code": code, "path": None}


def _injected_error(info: GraphQLResolveInfo) -> SimError | None:
    if _ctx(info).fault(info.field_name, "error"):
        return SimError("SIMULATED_FAULT", f"Simulated failure of {info.field_name}")
    return None


# JSON shapes ----------------------------------------------------------------------------------------


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


def _public_wallet_json(wallet: Wallet) -> dict:
    return {
        "__typename": "PublicWallet",
        "id": wallet.id,
        "currency": wallet.currency,
        "walletCurrency": wallet.currency,
    }


def _wallet_json(wallet: Wallet) -> dict:
    return {
        "__typename": "BTCWallet" if wallet.currency == BTC else "UsdWallet",
        "id": wallet.id,
        "accountId": wallet.account_id,
        "balance": wallet.balance,
        "pendingIncomingBalance": 0,
        "walletCurrency": wallet.currency,
    }


def _account_json(state: SimState, account: Account) -> dict:
    wallets = state.wallets_of(account)
    default = state.wallet(account.usd_wallet_id)  # like new Blink accounts: USD is the default

    def wallet_by_id(_info: GraphQLResolveInfo, walletId: str) -> dict:  # noqa: N803 (GraphQL name)
        for wallet in wallets:
            if wallet.id == walletId:
                return _wallet_json(wallet)
        raise top_level_error("Invalid walletId for this account", "INVALID_INPUT")

    return {
        "__typename": "ConsumerAccount",
        "id": account.id,
        "wallets": [_wallet_json(wallet) for wallet in wallets],
        "walletById": wallet_by_id,
        "defaultWallet": _public_wallet_json(default),
        "defaultWalletId": default.id,
        "displayCurrency": "USD",
        "level": "ONE",
    }


def _display_amount(sats: int) -> str:
    return str((sats * _DISPLAY_CENTS_PER_SAT / 100).quantize(Decimal("0.01")))


def _send_transaction_json(state: SimState, invoice: Invoice, transfer: Transfer, status: str) -> dict:
    recipient = state.wallet(invoice.wallet_id)
    counterparty = state.account(recipient.account_id)
    return {
        "__typename": "Transaction",
        "id": transfer.id,
        "createdAt": int(transfer.at),
        "direction": "SEND",
        "externalId": None,
        "initiationVia": {
            "__typename": "InitiationViaLn",
            "paymentHash": invoice.payment_hash,
            "paymentRequest": invoice.payment_request,
        },
        "memo": transfer.memo or None,
        "settlementAmount": -transfer.sats,
        "settlementCurrency": BTC,
        "settlementDisplayAmount": _display_amount(-transfer.sats),
        "settlementDisplayCurrency": "USD",
        "settlementDisplayFee": "0.00",
        "settlementFee": 0,
        "settlementPrice": {
            "__typename": "PriceOfOneSettlementMinorUnitInDisplayMinorUnit",
            "base": 100_000_000_000,
            "offset": 12,
            "currencyUnit": "MINOR",
            "formattedAmount": "0.1",
        },
        "settlementVia": {
            "__typename": "SettlementViaIntraLedger",
            "counterPartyUsername": counterparty.username if counterparty else None,
            "counterPartyWalletId": invoice.wallet_id,
            "preImage": invoice.preimage,
        },
        "status": status,
    }


def _status_json(invoice: Invoice, now: float) -> dict:
    status = invoice.status(now)
    return {
        "paymentHash": invoice.payment_hash,
        "paymentRequest": invoice.payment_request,
        "paymentPreimage": invoice.preimage if status == "PAID" else None,
        "status": status,
    }


# Resolvers ------------------------------------------------------------------------------------------


def _invoice_payload(state: SimState, wallet_id: Any, args: dict) -> dict:
    try:
        invoice = state.create_invoice(wallet_id, args.get("amount"), args.get("memo"), args.get("expiresIn"))
    except SimError as exc:
        return {"errors": [_payload_error(exc.message, exc.code)], "invoice": None}
    return {"errors": [], "invoice": invoice_json(invoice, state.clock())}


def ln_invoice_create(_root: Any, info: GraphQLResolveInfo, input: dict) -> dict:  # noqa: A002
    account = _require_account(info, "RECEIVE")
    if injected := _injected_error(info):
        return {"errors": [_payload_error(injected.message, injected.code)], "invoice": None}
    wallet_id = input.get("walletId")
    if wallet_id not in (account.btc_wallet_id, account.usd_wallet_id):
        return {
            "errors": [_payload_error("Invalid walletId for this account", "INVALID_INPUT")],
            "invoice": None,
        }
    return _invoice_payload(_ctx(info).state, wallet_id, input)


def ln_invoice_create_on_behalf_of_recipient(_root: Any, info: GraphQLResolveInfo, input: dict) -> dict:  # noqa: A002
    if injected := _injected_error(info):
        return {"errors": [_payload_error(injected.message, injected.code)], "invoice": None}
    return _invoice_payload(_ctx(info).state, input.get("recipientWalletId"), input)


def account_default_wallet(
    _root: Any,
    info: GraphQLResolveInfo,
    username: str,
    walletCurrency: str | None = None,  # noqa: N803
) -> dict:
    if injected := _injected_error(info):
        raise top_level_error(injected.message, injected.code)
    if not rules.is_valid_username(username):
        raise top_level_error("Invalid value for Username", "INVALID_INPUT")
    state = _ctx(info).state
    account = state.account_by_username(username)
    if account is None:
        raise top_level_error(f"Account does not exist for username {username}", "NOT_FOUND")
    wallet_id = account.btc_wallet_id if walletCurrency == BTC else account.usd_wallet_id
    return _public_wallet_json(state.wallet(wallet_id))


def _send_failure(exc: SimError) -> dict:
    return {"errors": [_payload_error(exc.message, exc.code)], "status": "FAILURE", "transaction": None}


def ln_invoice_payment_send(_root: Any, info: GraphQLResolveInfo, input: dict) -> dict:  # noqa: A002
    account = _require_account(info, "WRITE")
    if injected := _injected_error(info):
        return _send_failure(injected)
    ctx = _ctx(info)
    state = ctx.state
    wallet_id = input.get("walletId")
    if wallet_id not in (account.btc_wallet_id, account.usd_wallet_id):
        return _send_failure(SimError("INVALID_INPUT", "Invalid walletId for this account"))
    if not rules.is_valid_memo(input.get("memo")):
        return _send_failure(
            SimError("INVALID_INPUT", f"Memo is too long (max {rules.MAX_MEMO_BYTES} bytes)")
        )
    payment_request = input.get("paymentRequest") or ""
    invoice = state.invoice_by_request(payment_request)
    if invoice is None:
        if not payment_request.lower().startswith("ln"):
            return _send_failure(SimError("INVALID_INPUT", "Invalid payment request"))
        # Not issued here: the simulator has no route to the rest of the Lightning network.
        return _send_failure(SimError("ROUTE_FINDING_ERROR", "Unable to find a route for payment."))
    try:
        payment = state.pay_invoice(invoice, wallet_id, input.get("memo"))
    except SimError as exc:
        return _send_failure(exc)
    if payment.status == "ALREADY_PAID":
        return {"errors": [], "status": "ALREADY_PAID", "transaction": None}
    status = "PENDING" if ctx.fault(PAYMENT_SEND, "pending") else "SUCCESS"
    return {
        "errors": [],
        "status": status,
        "transaction": _send_transaction_json(state, invoice, payment.transfer, status),
    }


def _invoice_or_not_found(invoice: Invoice | None) -> Invoice:
    if invoice is None:
        raise top_level_error("Invoice not found", "NOT_FOUND")
    return invoice


def ln_invoice_payment_status_by_hash(_root: Any, info: GraphQLResolveInfo, input: dict) -> dict:  # noqa: A002
    if injected := _injected_error(info):
        raise top_level_error(injected.message, injected.code)
    state = _ctx(info).state
    invoice = _invoice_or_not_found(state.invoice_by_hash(input.get("paymentHash")))
    return _status_json(invoice, state.clock())


def ln_invoice_payment_status_by_request(_root: Any, info: GraphQLResolveInfo, input: dict) -> dict:  # noqa: A002
    if injected := _injected_error(info):
        raise top_level_error(injected.message, injected.code)
    state = _ctx(info).state
    invoice = _invoice_or_not_found(state.invoice_by_request(input.get("paymentRequest")))
    return _status_json(invoice, state.clock())


def ln_invoice_payment_status_deprecated(_root: Any, info: GraphQLResolveInfo, input: dict) -> dict:  # noqa: A002
    """The deprecated `lnInvoicePaymentStatus`: same answer, inside a payload with `errors`."""
    state = _ctx(info).state
    if injected := _injected_error(info):
        return {"errors": [_payload_error(injected.message, injected.code)], "status": None}
    invoice = state.invoice_by_request(input.get("paymentRequest"))
    if invoice is None:
        return {"errors": [_payload_error("Invoice not found", "NOT_FOUND")], "status": None}
    return {"errors": [], **_status_json(invoice, state.clock())}


def me(_root: Any, info: GraphQLResolveInfo) -> dict:
    account = _require_account(info, "READ")
    if injected := _injected_error(info):
        raise top_level_error(injected.message, injected.code)
    state = _ctx(info).state
    return {
        "__typename": "User",
        "id": account.id,
        "username": account.username,
        "createdAt": int(account.created_at),
        "language": "",
        "totpEnabled": False,
        "phone": None,
        "email": None,
        "defaultAccount": _account_json(state, account),
    }


def authorization(_root: Any, info: GraphQLResolveInfo) -> dict:
    return {"scopes": list(_require_account(info, None).scopes)}


def _not_implemented(_root: Any, info: GraphQLResolveInfo, **_args: Any) -> None:
    raise top_level_error(f"{info.field_name} is not supported by the Blink simulator", "NOT_IMPLEMENTED")


_QUERY_RESOLVERS = {
    "accountDefaultWallet": account_default_wallet,
    "lnInvoicePaymentStatusByHash": ln_invoice_payment_status_by_hash,
    "lnInvoicePaymentStatusByPaymentRequest": ln_invoice_payment_status_by_request,
    "lnInvoicePaymentStatus": ln_invoice_payment_status_deprecated,
    "me": me,
    "authorization": authorization,
}
_MUTATION_RESOLVERS = {
    "lnInvoiceCreate": ln_invoice_create,
    "lnInvoiceCreateOnBehalfOfRecipient": ln_invoice_create_on_behalf_of_recipient,
    "lnInvoicePaymentSend": ln_invoice_payment_send,
}


def attach_resolvers(schema: GraphQLSchema) -> GraphQLSchema:
    """Wire the resolvers into the (freshly built) schema; every other root field answers NOT_IMPLEMENTED."""
    for root_type, resolvers in (
        (schema.query_type, _QUERY_RESOLVERS),
        (schema.mutation_type, _MUTATION_RESOLVERS),
    ):
        for name, field_def in root_type.fields.items():
            field_def.resolve = resolvers.get(name, _not_implemented)
    return schema
