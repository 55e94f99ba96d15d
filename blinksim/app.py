"""The simulator's Flask app: Blink's `/graphql` plus the `/sim/*` control API (DESIGN.md section 6)."""

from __future__ import annotations

import secrets

from coincurve import PrivateKey
from flask import Flask, Response, jsonify, request

from blinksim import lnurl, rules
from blinksim.endpoint import GraphQLEndpoint
from blinksim.faults import FaultBook, FaultSpecError, parse_fault
from blinksim.invoices import use_fast_regrouping
from blinksim.model import FAILURE, SCOPES, SUCCESS, FeePolicy, Invoice, SimError, Transfer, iso_time
from blinksim.resolvers import attach_resolvers
from blinksim.schema import load_schema
from blinksim.state import SimState
from blinksim.webhooks import WebhookConfigError, WebhookDispatcher


def receive_event(state: SimState, invoice: Invoice, transfer: Transfer) -> dict:
    """The webhook body Blink sends the receiving account (`transaction` in Blink's internal shape)."""
    wallet = state.wallet(invoice.wallet_id)
    return {
        "accountId": wallet.account_id,
        "walletId": wallet.id,
        "eventType": "receive.lightning",
        "transaction": {
            "id": transfer.id,
            "status": "success",
            "direction": "RECEIVE",
            "settlementAmount": transfer.sats,
            "settlementCurrency": "BTC",
            "initiationVia": {"type": "Lightning", "paymentHash": invoice.payment_hash},
            "memo": invoice.memo,
            "createdAt": iso_time(transfer.at),
        },
    }


def _problem(http_status: int, message: str, code: str, **extra: object) -> tuple[Response, int]:
    return jsonify({"error": message, "code": code, **extra}), http_status


def create_app(state: SimState | None = None, webhooks: WebhookDispatcher | None = None) -> Flask:
    use_fast_regrouping()
    webhooks = webhooks or WebhookDispatcher()
    if state is None:
        state = SimState(node_key=PrivateKey(secrets.token_bytes(32)))
    state.on_settled = lambda invoice, transfer: webhooks.notify(
        invoice.wallet_id, receive_event(state, invoice, transfer)
    )
    faults = FaultBook()
    endpoint = GraphQLEndpoint(attach_resolvers(load_schema()), state, faults)

    app = Flask("blinksim")
    app.json.sort_keys = False  # GraphQL answers keep the order of the query
    app.extensions["blinksim"] = {"state": state, "faults": faults, "webhooks": webhooks}

    @app.post("/graphql")
    def graphql_view() -> Response | tuple[Response, int]:
        answer = endpoint.handle(request.get_json(silent=True), request.headers.get("X-API-KEY"))
        if isinstance(answer.body, str):
            return Response(answer.body, status=answer.status, mimetype="text/html")
        return jsonify(answer.body), answer.status

    lnurl.register(app, state)

    @app.get("/sim/health")
    def health() -> Response:
        return jsonify({"status": "ok", "nodePubkey": state.node_key.public_key.format().hex()})

    @app.post("/sim/accounts")
    def create_account() -> tuple[Response, int]:
        body = request.get_json(silent=True) or {}
        username = body.get("username") or "user_" + secrets.token_hex(6)
        try:
            account = state.create_account(username, body.get("balance", 0), body.get("scopes", SCOPES))
        except SimError as exc:
            status = 409 if exc.code == "USERNAME_UNAVAILABLE" else 400
            return _problem(status, exc.message, exc.code.lower())
        return jsonify(
            {
                "apiKey": account.api_key,
                "btcWalletId": account.btc_wallet_id,
                "usdWalletId": account.usd_wallet_id,
                "username": account.username,
                "accountId": account.id,
                "scopes": list(account.scopes),
            }
        ), 200

    @app.delete("/sim/keys/<api_key>")
    def revoke_key(api_key: str) -> Response | tuple[Response, int]:
        if not state.revoke_key(api_key):
            return _problem(404, "No such API key", "not_found")
        return Response(status=204)

    @app.get("/sim/wallets/<wallet_id>")
    def get_wallet(wallet_id: str) -> Response | tuple[Response, int]:
        wallet = state.wallet(wallet_id)
        if wallet is None:
            return _problem(404, "wallet not found", "wallet_not_found")
        return jsonify(
            {
                "walletId": wallet.id,
                "currency": wallet.currency,
                "balance": wallet.balance,
                "accountId": wallet.account_id,
            }
        )

    def _invoice_view(invoice: Invoice) -> dict:
        return {
            "paymentHash": invoice.payment_hash,
            "paymentRequest": invoice.payment_request,
            "preimage": invoice.preimage,
            "walletId": invoice.wallet_id,
            "sats": invoice.sats,
            "memo": invoice.memo,
            "status": invoice.status(state.clock()),
            "expiresAt": iso_time(invoice.expires_at),
        }

    @app.get("/sim/invoices/<payment_hash>")
    def get_invoice(payment_hash: str) -> Response | tuple[Response, int]:
        invoice = state.invoice_by_hash(payment_hash)
        if invoice is None:
            return _problem(404, "invoice not found", "invoice_not_found")
        return jsonify(_invoice_view(invoice))

    @app.post("/sim/invoices/<payment_hash>/pay")
    def customer_pays(payment_hash: str) -> Response | tuple[Response, int]:
        invoice = state.invoice_by_hash(payment_hash)
        if invoice is None:
            return _problem(404, "invoice not found", "invoice_not_found")
        try:
            payment = state.pay_invoice(invoice, None)
        except SimError as exc:
            return _problem(409, exc.message, exc.code.lower(), status=invoice.status(state.clock()))
        if payment.status == "ALREADY_PAID":
            return _problem(409, "invoice already paid", "already_paid", status="ALREADY_PAID")
        if payment.transfer is None:
            return _problem(
                409, "a payment of this invoice is in flight", "payment_in_flight", status="PENDING"
            )
        return jsonify(
            {"status": "PAID", "paymentHash": invoice.payment_hash, "transfer": payment.transfer.to_json()}
        )

    @app.post("/sim/invoices/<payment_hash>/expire")
    def expire_invoice(payment_hash: str) -> Response | tuple[Response, int]:
        invoice = state.invoice_by_hash(payment_hash)
        if invoice is None:
            return _problem(404, "invoice not found", "invoice_not_found")
        state.expire_invoice(invoice)
        return jsonify(_invoice_view(invoice))

    @app.get("/sim/fees")
    def get_fees() -> Response:
        return jsonify({"baseSats": state.fees.base_sats, "ppm": state.fees.ppm})

    @app.post("/sim/fees")
    def set_fees() -> Response | tuple[Response, int]:
        body = request.get_json(silent=True) or {}
        base, ppm = body.get("baseSats", state.fees.base_sats), body.get("ppm", state.fees.ppm)
        if not (rules.is_sat_amount(base) and rules.is_sat_amount(ppm) and ppm <= 1_000_000):
            return _problem(400, "baseSats and ppm must be integers >= 0 (ppm <= 1000000)", "invalid_fees")
        state.fees = FeePolicy(base, ppm)
        return get_fees()

    @app.post("/sim/payments/<payment_hash>/settle")
    def settle_payment(payment_hash: str) -> Response | tuple[Response, int]:
        outcome = (request.get_json(silent=True) or {}).get("status")
        if outcome not in (None, SUCCESS, FAILURE):
            return _problem(400, "status must be SUCCESS or FAILURE", "invalid_status")
        transfer_id = state.held_transfer_id(payment_hash.lower())
        transfer = state.settle(transfer_id, outcome) if transfer_id else None
        if transfer is None:
            return _problem(404, "no payment of this hash is held pending", "not_held")
        return jsonify(transfer.to_json())

    @app.post("/sim/faults")
    def add_fault() -> tuple[Response, int]:
        try:
            fault = parse_fault(request.get_json(silent=True))
        except FaultSpecError as exc:
            return _problem(400, str(exc), "invalid_fault")
        faults.add(fault)
        return jsonify(fault.to_json()), 200

    @app.get("/sim/faults")
    def list_faults() -> Response:
        return jsonify({"faults": faults.active()})

    @app.delete("/sim/faults")
    def clear_faults() -> Response:
        faults.clear()
        return jsonify({"faults": []})

    @app.get("/sim/ledger")
    def ledger() -> Response:
        return jsonify([transfer.to_json() for transfer in state.ledger()])

    @app.post("/sim/webhooks")
    def set_webhook() -> Response | tuple[Response, int]:
        body = request.get_json(silent=True) or {}
        try:
            webhooks.configure(body.get("url"), body.get("secret"), body.get("walletId"))
        except WebhookConfigError as exc:
            return _problem(400, str(exc), "invalid_webhook")
        return jsonify(webhooks.status())

    @app.get("/sim/webhooks")
    def webhook_status() -> Response:
        return jsonify(webhooks.status())

    @app.delete("/sim/webhooks")
    def clear_webhook() -> Response:
        webhooks.clear()
        return jsonify(webhooks.status())

    return app
