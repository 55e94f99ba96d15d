"""Foreign Lightning wallets with an LNURL-pay endpoint (LUD-06, LUD-16), outside Blink, some hostile.

`/.well-known/lnurlp/<name>` answers the pay request and `/lnurlp/<name>/callback?amount=<msat>` an
invoice signed by a node outside Blink: paying it from a Blink wallet is an external payment credited
to the foreign wallet's balance. A wallet's `mode` makes it misbehave the ways real servers do, so a
payer's every check can be tested against a real HTTP server. Control: `/sim/lnurl-wallets`.
"""

from __future__ import annotations

import hashlib
import json
import re
import time

import bech32
from flask import Blueprint, Flask, Response, jsonify, request

from blinksim.model import ForeignWallet
from blinksim.state import SimState

# Invoice-level misbehaviour (at the callback) and pay-request-level (at the first step).
INVOICE_MODES = ("wrong_amount", "amountless", "expired", "description_hash_mismatch", "plain_description")
PAY_REQUEST_MODES = ("min_above_amount", "not_pay_request")
# Transport-level misbehaviour, at the step(s) the wallet's `step` names.
STEP_MODES = ("error", "slow", "oversized", "not_json", "redirect")
MODES = ("normal", *INVOICE_MODES, *PAY_REQUEST_MODES, *STEP_MODES)
STEPS = ("payRequest", "callback", "both")

_NAME = re.compile(r"^[a-z0-9_.+-]{1,100}$")  # LUD-16's name characters (and '+', which some allow)
_AMOUNT = re.compile(r"[0-9]{1,20}")
_MAX_MSAT = 2_100_000_000_000_000_000
_MIN_ABOVE_MSAT = 100_000_000_000  # 1 BTC: above any amount a test sends
_OVERSIZED_BYTES = 128 * 1024
_INVOICE_EXPIRY_SECONDS = 600  # LNURL servers issue short-lived invoices


class SpecError(ValueError):
    """A malformed foreign wallet request from the control API."""


def _int_field(body: dict, key: str, default: int, low: int, high: int) -> int:
    value = body.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise SpecError(f"{key} must be an integer in [{low}, {high}]")
    return value


def _changes(body: dict, current: ForeignWallet | None) -> dict:
    """The validated wallet settings in `body` (all of them for a new wallet, when `current` is None)."""

    def given(key: str, default: object) -> object:
        return body.get(key, default if current is None else getattr(current, _ATTRS[key]))

    min_sendable = _int_field(body, "minSendable", given("minSendable", 1_000), 1, _MAX_MSAT)
    max_sendable = _int_field(body, "maxSendable", given("maxSendable", 1_000_000_000), 1, _MAX_MSAT)
    if min_sendable > max_sendable:
        raise SpecError("minSendable must not exceed maxSendable")
    mode, step = given("mode", "normal"), given("step", "both")
    if mode not in MODES:
        raise SpecError(f"mode must be one of {', '.join(MODES)}")
    if step not in STEPS:
        raise SpecError(f"step must be one of {', '.join(STEPS)}")
    redirect_to = given("redirectTo", "http://169.254.169.254/latest/meta-data/")
    if not isinstance(redirect_to, str) or not redirect_to.startswith(("http://", "https://")):
        raise SpecError("redirectTo must be an http(s) URL")
    return {
        "min_sendable": min_sendable,
        "max_sendable": max_sendable,
        "comment_allowed": _int_field(body, "commentAllowed", given("commentAllowed", 0), 0, 2000),
        "mode": mode,
        "step": step,
        "delay_ms": _int_field(body, "delayMs", given("delayMs", 3_000), 0, 120_000),
        "http_status": _int_field(body, "httpStatus", given("httpStatus", 200), 200, 599),
        "redirect_to": redirect_to,
    }


_ATTRS = {
    "minSendable": "min_sendable",
    "maxSendable": "max_sendable",
    "commentAllowed": "comment_allowed",
    "mode": "mode",
    "step": "step",
    "delayMs": "delay_ms",
    "httpStatus": "http_status",
    "redirectTo": "redirect_to",
}


def encode_lnurl(url: str) -> str:
    """LUD-01: the URL's bytes as bech32 with hrp `lnurl` (no 90-character limit)."""
    return bech32.bech32_encode("lnurl", bech32.convertbits(url.encode(), 8, 5))


def _base_url() -> str:
    return request.host_url.rstrip("/")


def _metadata(wallet: ForeignWallet) -> str:
    return json.dumps([["text/plain", f"Payment to {wallet.name}"], ["text/identifier", _address(wallet)]])


def _address(wallet: ForeignWallet) -> str:
    return f"{wallet.name}@{request.host}"


def wallet_view(state: SimState, wallet: ForeignWallet) -> dict:
    pay_request_url = f"{_base_url()}/.well-known/lnurlp/{wallet.name}"
    invoices = [state.foreign_invoice_by_hash(h) for h in wallet.invoices]
    return {
        "name": wallet.name,
        "lightningAddress": _address(wallet),
        "payRequestUrl": pay_request_url,
        "lnurl": encode_lnurl(pay_request_url),
        "callbackUrl": f"{_base_url()}/lnurlp/{wallet.name}/callback",
        **{key: getattr(wallet, attr) for key, attr in _ATTRS.items()},
        "balance": wallet.balance,
        "payRequests": wallet.pay_requests,
        "callbacks": wallet.callbacks,
        "comments": list(wallet.comments),
        "invoices": [
            {
                "paymentHash": invoice.payment_hash,
                "paymentRequest": invoice.payment_request,
                "amountMsat": invoice.amount_msat,
                "status": state.external_status(invoice.payment_hash),
            }
            for invoice in invoices
            if invoice is not None
        ],
    }


def _misbehave(wallet: ForeignWallet, step: str) -> Response | None:
    """The wallet's transport-level misbehaviour at this step, or None to answer normally."""
    if wallet.mode not in STEP_MODES or wallet.step not in (step, "both"):
        return None
    if wallet.mode == "slow":
        time.sleep(wallet.delay_ms / 1000)
        return None
    if wallet.mode == "error":
        return _error(f"Simulated failure of the {step} step", wallet.http_status)
    if wallet.mode == "redirect":
        return Response("", status=302, headers={"Location": wallet.redirect_to})
    if wallet.mode == "not_json":
        return Response("<html><body>It works!</body></html>", status=200, mimetype="text/html")
    return None  # oversized: the normal answer, padded by the caller


def _answer(wallet: ForeignWallet, body: dict) -> Response:
    if wallet.mode == "oversized":
        body = {**body, "padding": "x" * _OVERSIZED_BYTES}
    return Response(json.dumps(body), status=200, mimetype="application/json")


def _error(reason: str, http_status: int = 200) -> Response:
    """LUD-06's error answer (servers send it with HTTP 200 as often as with 4xx/5xx)."""
    body = json.dumps({"status": "ERROR", "reason": reason})
    return Response(body, status=http_status, mimetype="application/json")


def _pay_request(wallet: ForeignWallet) -> dict:
    low, high = wallet.min_sendable, wallet.max_sendable
    if wallet.mode == "min_above_amount":
        low = high = max(high, _MIN_ABOVE_MSAT)
    body = {
        "tag": "withdrawRequest" if wallet.mode == "not_pay_request" else "payRequest",
        "callback": f"{_base_url()}/lnurlp/{wallet.name}/callback",
        "minSendable": low,
        "maxSendable": high,
        "metadata": _metadata(wallet),
    }
    if wallet.comment_allowed:
        body["commentAllowed"] = wallet.comment_allowed
    return body


def _invoice(state: SimState, wallet: ForeignWallet, amount_msat: int) -> str:
    mode, metadata_hash = wallet.mode, hashlib.sha256(_metadata(wallet).encode()).digest()
    issued = state.issue_foreign_invoice(
        wallet,
        None if mode == "amountless" else amount_msat + (1_000 if mode == "wrong_amount" else 0),
        description=f"Payment to {wallet.name}",
        description_hash={
            "plain_description": None,
            "description_hash_mismatch": hashlib.sha256(b"some other metadata").digest(),
        }.get(mode, metadata_hash),
        expiry_seconds=_INVOICE_EXPIRY_SECONDS,
        age_seconds=2 * _INVOICE_EXPIRY_SECONDS if mode == "expired" else 0,
    )
    return issued.payment_request


def register(app: Flask, state: SimState) -> None:
    """Add the LNURL-pay endpoints and their control API to the simulator's app."""
    bp = Blueprint("lnurl", __name__)

    def problem(status: int, message: str, code: str) -> tuple[Response, int]:
        return jsonify({"error": message, "code": code}), status

    @bp.get("/.well-known/lnurlp/<name>")
    def pay_request(name: str) -> Response | tuple[Response, int]:
        wallet = state.foreign_wallet(name.lower())
        if wallet is None:
            return _error("Unknown user", 404)
        state.count_foreign_request(wallet, "payRequest")
        return _misbehave(wallet, "payRequest") or _answer(wallet, _pay_request(wallet))

    @bp.get("/lnurlp/<name>/callback")
    def callback(name: str) -> Response | tuple[Response, int]:
        wallet = state.foreign_wallet(name.lower())
        if wallet is None:
            return _error("Unknown user", 404)
        comment = request.args.get("comment")
        state.count_foreign_request(wallet, "callback", comment)
        if (misbehaviour := _misbehave(wallet, "callback")) is not None:
            return misbehaviour
        advertised = _pay_request(wallet)
        amount = request.args.get("amount", "")
        if (
            not _AMOUNT.fullmatch(amount)
            or not advertised["minSendable"] <= int(amount) <= advertised["maxSendable"]
        ):
            return _error(
                f"Amount must be msat in [{advertised['minSendable']}, {advertised['maxSendable']}]"
            )
        if comment is not None and len(comment) > wallet.comment_allowed:
            return _error(f"Comment is longer than {wallet.comment_allowed} characters")
        return _answer(wallet, {"pr": _invoice(state, wallet, int(amount)), "routes": []})

    @bp.post("/sim/lnurl-wallets")
    def create_wallet() -> tuple[Response, int]:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return problem(400, "a JSON object is required", "invalid_lnurl_wallet")
        name = body.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            return problem(400, "name must be 1-100 of a-z 0-9 - _ . +", "invalid_lnurl_wallet")
        try:
            wallet = ForeignWallet(name=name, **_changes(body, None))
        except SpecError as exc:
            return problem(400, str(exc), "invalid_lnurl_wallet")
        if not state.add_foreign_wallet(wallet):
            return problem(409, "a foreign wallet with this name exists", "name_taken")
        return jsonify(wallet_view(state, wallet)), 200

    @bp.get("/sim/lnurl-wallets")
    def list_wallets() -> Response:
        return jsonify([wallet_view(state, wallet) for wallet in state.foreign_wallets()])

    @bp.get("/sim/lnurl-wallets/<name>")
    def get_wallet(name: str) -> Response | tuple[Response, int]:
        wallet = state.foreign_wallet(name)
        if wallet is None:
            return problem(404, "no foreign wallet with this name", "lnurl_wallet_not_found")
        return jsonify(wallet_view(state, wallet))

    @bp.patch("/sim/lnurl-wallets/<name>")
    def update_wallet(name: str) -> Response | tuple[Response, int]:
        body, wallet = request.get_json(silent=True), state.foreign_wallet(name)
        if wallet is None:
            return problem(404, "no foreign wallet with this name", "lnurl_wallet_not_found")
        if not isinstance(body, dict):
            return problem(400, "a JSON object is required", "invalid_lnurl_wallet")
        try:
            changes = _changes(body, wallet)
        except SpecError as exc:
            return problem(400, str(exc), "invalid_lnurl_wallet")
        state.update_foreign_wallet(name, **changes)
        return jsonify(wallet_view(state, wallet))

    app.register_blueprint(bp)
