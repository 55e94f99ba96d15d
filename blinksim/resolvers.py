"""Resolvers for the Blink operations the simulator answers, shaped as Blink shapes them.

Rejections Blink reports inside a mutation's payload (`errors: [{message, code, path}]`) come back
that way; authentication failures and unknown usernames are top-level GraphQL errors, as on Blink.
Root fields the simulator does not implement answer a top-level NOT_IMPLEMENTED error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from graphql import GraphQLResolveInfo, GraphQLSchema

from blinksim import rules
from blinksim.faults import HOLD_OUTCOMES, Fault
from blinksim.model import BTC, PENDING, Account, Invoice, SimError
from blinksim.payments import HoldSpec
from blinksim.shapes import (
    SEND,
    account_json,
    invoice_json,
    public_wallet_json,
    status_json,
    top_level_error,
    transaction_json,
)
from blinksim.state import SimState

PAYMENT_SEND = "lnInvoicePaymentSend"


@dataclass
class RequestContext:
    """What resolvers know about one HTTP request: the caller and the faults that hit it."""

    state: SimState
    account: Account | None
    faults: list[Fault] = field(default_factory=list)

    def fault(self, operation: str, mode: str) -> bool:
        return any(f.mode == mode and f.operation in ("*", operation) for f in self.faults)

    def hold(self, operation: str) -> HoldSpec | None:
        """How a `pending_then_*` fault holds this payment, if one hit it."""
        for f in self.faults:
            if f.mode in HOLD_OUTCOMES and f.operation in ("*", operation):
                after = None if f.delay_ms is None else f.delay_ms / 1000
                return HoldSpec(HOLD_OUTCOMES[f.mode], after)
        return None


def _ctx(info: GraphQLResolveInfo) -> RequestContext:
    return info.context


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
    return public_wallet_json(state.wallet(wallet_id))


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
    hold = ctx.hold(PAYMENT_SEND)
    try:
        if invoice is not None:
            payment = state.pay_invoice(invoice, wallet_id, input.get("memo"), hold)
        else:  # not issued here: paid over Lightning to the outside world, for a routing fee
            payment = state.pay_external(wallet_id, payment_request, input.get("memo"), hold)
    except SimError as exc:
        return _send_failure(exc)
    if payment.transfer is None:  # paid already, or a held payment of it is in flight: nothing moved
        return {"errors": [], "status": payment.status, "transaction": None}
    status = PENDING if ctx.fault(PAYMENT_SEND, "pending") else payment.status
    return {
        "errors": [],
        "status": status,
        "transaction": transaction_json(state, payment.transfer, SEND, status),
    }


def ln_invoice_fee_probe(_root: Any, info: GraphQLResolveInfo, input: dict) -> dict:  # noqa: A002
    account = _require_account(info, "WRITE")
    if injected := _injected_error(info):
        return {"errors": [_payload_error(injected.message, injected.code)], "amount": None}
    if input.get("walletId") not in (account.btc_wallet_id, account.usd_wallet_id):
        return {
            "errors": [_payload_error("Invalid walletId for this account", "INVALID_INPUT")],
            "amount": None,
        }
    try:
        fee = _ctx(info).state.fee_probe(input.get("paymentRequest") or "")
    except SimError as exc:
        return {"errors": [_payload_error(exc.message, exc.code)], "amount": None}
    return {"errors": [], "amount": fee}


def _invoice_or_not_found(invoice: Invoice | None) -> Invoice:
    if invoice is None:
        raise top_level_error("Invoice not found", "NOT_FOUND")
    return invoice


def ln_invoice_payment_status_by_hash(_root: Any, info: GraphQLResolveInfo, input: dict) -> dict:  # noqa: A002
    if injected := _injected_error(info):
        raise top_level_error(injected.message, injected.code)
    state = _ctx(info).state
    invoice = _invoice_or_not_found(state.invoice_by_hash(input.get("paymentHash")))
    return status_json(invoice, state.clock())


def ln_invoice_payment_status_by_request(_root: Any, info: GraphQLResolveInfo, input: dict) -> dict:  # noqa: A002
    if injected := _injected_error(info):
        raise top_level_error(injected.message, injected.code)
    state = _ctx(info).state
    invoice = _invoice_or_not_found(state.invoice_by_request(input.get("paymentRequest")))
    return status_json(invoice, state.clock())


def ln_invoice_payment_status_deprecated(_root: Any, info: GraphQLResolveInfo, input: dict) -> dict:  # noqa: A002
    """The deprecated `lnInvoicePaymentStatus`: same answer, inside a payload with `errors`."""
    state = _ctx(info).state
    if injected := _injected_error(info):
        return {"errors": [_payload_error(injected.message, injected.code)], "status": None}
    invoice = state.invoice_by_request(input.get("paymentRequest"))
    if invoice is None:
        return {"errors": [_payload_error("Invoice not found", "NOT_FOUND")], "status": None}
    return {"errors": [], **status_json(invoice, state.clock())}


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
        "defaultAccount": account_json(state, account),
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
    "lnInvoiceFeeProbe": ln_invoice_fee_probe,
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
