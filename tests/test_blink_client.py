"""BlinkClient over real HTTP: against the Blink simulator (happy paths, faults, retries,
exactly-once payments) and against a tiny scripted HTTP server for answer shapes the
simulator has no fault for (rate limits, malformed JSON, a key echoed in an error)."""

from __future__ import annotations

import json
import logging
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import bolt11
import pytest
import urllib3
from graphql import GraphQLInputObjectType, get_named_type, parse, type_from_ast
from graphql.execution.values import get_variable_values

from service.blink import (
    BlinkClient,
    BlinkError,
    BlinkForbidden,
    BlinkRejected,
    BlinkTimeout,
    BlinkUnauthorized,
    BlinkUnavailable,
    InvoiceStatus,
    PaymentStatus,
    WalletCurrency,
)
from tests.test_blink_schema import blink_schema

CANARY_KEY = "blink_CANARY_" + "k3y" * 8  # recognizable in any message or log line


class CallLog:
    """The observer hook: records (operation, seconds, outcome) of every HTTP round trip."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, float, str]] = []

    def __call__(self, operation: str, seconds: float, outcome: str) -> None:
        self.calls.append((operation, seconds, outcome))

    def outcomes(self, operation: str) -> list[str]:
        return [outcome for op, _, outcome in self.calls if op == operation]


def make_client(url: str, *, read_timeout: float = 5.0, observer: CallLog | None = None) -> BlinkClient:
    return BlinkClient(
        url,
        connect_timeout=2.0,
        read_timeout=read_timeout,
        observer=observer,
        retry_backoff_seconds=0.01,
    )


def assert_no_key_leak(error: BaseException, key: str, caplog: pytest.LogCaptureFixture) -> None:
    assert key not in str(error)
    assert key not in repr(error)
    for record in caplog.records:
        assert key not in record.getMessage()
        assert key not in repr(record.__dict__)


class SchemaCheckingPool(urllib3.PoolManager):
    """A real connection pool that also records each GraphQL body, to check the variables sent."""

    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[dict] = []

    def request(self, method, url, body=None, **kwargs):  # type: ignore[override]
        self.bodies.append(json.loads(body))
        return super().request(method, url, body=body, **kwargs)

    def variable_problems(self) -> list[str]:
        """Variables that do not fit the schema, or that set a deprecated input field."""
        schema = blink_schema()
        problems: list[str] = []
        for body in self.bodies:
            [operation] = parse(body["query"]).definitions
            definitions = operation.variable_definitions or ()
            coerced = get_variable_values(schema, definitions, body["variables"])
            if isinstance(coerced, list):
                problems.extend(f"{body['operationName']}: {error.message}" for error in coerced)
                continue
            for definition in definitions:
                input_type = get_named_type(type_from_ast(schema, definition.type))
                value = body["variables"].get(definition.variable.name.value)
                if isinstance(input_type, GraphQLInputObjectType) and isinstance(value, dict):
                    problems.extend(
                        f"{body['operationName']}: deprecated {input_type.name}.{name}"
                        for name in value
                        if input_type.fields[name].deprecation_reason
                    )
        return problems


# ---- against the Blink simulator ------------------------------------------------------------


@pytest.fixture
def blink(sim_clean) -> Iterator[tuple[BlinkClient, CallLog]]:
    calls = CallLog()
    pool = SchemaCheckingPool()
    client = BlinkClient(
        sim_clean.graphql_url,
        connect_timeout=2.0,
        read_timeout=5.0,
        pool=pool,
        observer=calls,
        retry_backoff_seconds=0.01,
    )
    yield client, calls
    pool.clear()
    # Every request the test made carried variables that Blink's schema accepts.
    assert pool.variable_problems() == []


@pytest.fixture
def merchant(sim_clean) -> dict:
    return sim_clean.create_account(balance=0)


@pytest.fixture
def payer(sim_clean) -> dict:
    return sim_clean.create_account(balance=100_000)


def ledger_entries_for(sim, payment_hash: str) -> list[dict]:
    return [entry for entry in sim.ledger() if payment_hash in json.dumps(entry)]


def test_create_invoice_returns_bolt11_whose_amount_and_hash_match(blink, merchant):
    client, _ = blink
    invoice = client.create_invoice(merchant["apiKey"], merchant["btcWalletId"], 1234, "coffee")
    decoded = bolt11.decode(invoice.payment_request)
    assert invoice.satoshis == 1234
    assert decoded.amount_msat == 1234 * 1000
    assert decoded.payment_hash == invoice.payment_hash
    assert decoded.description == "coffee"


def test_create_invoice_honours_expiry_minutes(blink, merchant):
    client, _ = blink
    invoice = client.create_invoice(
        merchant["apiKey"], merchant["btcWalletId"], 10, None, expires_in_minutes=5
    )
    assert bolt11.decode(invoice.payment_request).expiry == 5 * 60


def test_invoice_status_goes_from_pending_to_paid_when_customer_pays(blink, sim_clean, merchant):
    client, _ = blink
    invoice = client.create_invoice(merchant["apiKey"], merchant["btcWalletId"], 500, "sale")
    assert client.invoice_status(invoice.payment_hash) is InvoiceStatus.PENDING
    sim_clean.pay(invoice.payment_hash)
    assert client.invoice_status(invoice.payment_hash) is InvoiceStatus.PAID
    assert sim_clean.balance(merchant["btcWalletId"]) == 500


def test_default_btc_wallet_resolves_username_to_btc_wallet(blink, sim_clean):
    client, _ = blink
    recipient = sim_clean.create_account(username="tip_" + secrets.token_hex(4))
    assert client.default_btc_wallet(recipient["username"]) == recipient["btcWalletId"]


def test_default_btc_wallet_of_unknown_username_is_rejected_as_recipient_not_found(blink):
    client, calls = blink
    with pytest.raises(BlinkRejected) as raised:
        client.default_btc_wallet("nobody_" + secrets.token_hex(4))
    assert raised.value.code == "recipient_not_found"
    assert not raised.value.retryable
    assert calls.outcomes("AccountDefaultWallet") == ["rejected"]  # a refusal is not retried


def test_invoice_for_recipient_credits_the_recipient_when_paid(blink, sim_clean, payer):
    client, _ = blink
    recipient = sim_clean.create_account(username="tip_" + secrets.token_hex(4))
    wallet_id = client.default_btc_wallet(recipient["username"])
    invoice = client.create_invoice_for_recipient(wallet_id, 21, "tip")
    assert bolt11.decode(invoice.payment_request).amount_msat == 21_000
    assert client.pay_invoice(payer["apiKey"], payer["btcWalletId"], invoice.payment_request) is (
        PaymentStatus.SUCCESS
    )
    assert sim_clean.balance(recipient["btcWalletId"]) == 21
    assert sim_clean.balance(payer["btcWalletId"]) == 100_000 - 21


def test_paying_the_same_invoice_twice_answers_already_paid_and_moves_sats_once(
    blink, sim_clean, merchant, payer
):
    client, _ = blink
    invoice = client.create_invoice(merchant["apiKey"], merchant["btcWalletId"], 300, "base")
    first = client.pay_invoice(payer["apiKey"], payer["btcWalletId"], invoice.payment_request, memo="fwd")
    second = client.pay_invoice(payer["apiKey"], payer["btcWalletId"], invoice.payment_request)
    assert (first, second) == (PaymentStatus.SUCCESS, PaymentStatus.ALREADY_PAID)
    assert sim_clean.balance(merchant["btcWalletId"]) == 300
    assert sim_clean.balance(payer["btcWalletId"]) == 100_000 - 300


def test_payment_beyond_the_balance_is_rejected_and_moves_nothing(blink, sim_clean, merchant):
    client, _ = blink
    poor = sim_clean.create_account(balance=10)
    invoice = client.create_invoice(merchant["apiKey"], merchant["btcWalletId"], 11, None)
    with pytest.raises(BlinkRejected):
        client.pay_invoice(poor["apiKey"], poor["btcWalletId"], invoice.payment_request)
    assert sim_clean.balance(poor["btcWalletId"]) == 10
    assert sim_clean.balance(merchant["btcWalletId"]) == 0


def test_wallets_lists_the_btc_and_usd_wallets_of_the_key(blink, merchant):
    client, _ = blink
    wallets = {wallet.id: wallet.currency for wallet in client.wallets(merchant["apiKey"])}
    assert wallets == {
        merchant["btcWalletId"]: WalletCurrency.BTC,
        merchant["usdWalletId"]: WalletCurrency.USD,
    }


@pytest.mark.parametrize("call", ["wallets", "create_invoice", "pay_invoice"])
def test_unknown_api_key_raises_unauthorized_without_leaking_it(blink, merchant, caplog, call):
    client, _ = blink
    caplog.set_level(logging.DEBUG)
    with pytest.raises(BlinkUnauthorized) as raised:
        if call == "wallets":
            client.wallets(CANARY_KEY)
        elif call == "create_invoice":
            client.create_invoice(CANARY_KEY, merchant["btcWalletId"], 10, None)
        else:
            invoice = client.create_invoice(merchant["apiKey"], merchant["btcWalletId"], 10, None)
            client.pay_invoice(CANARY_KEY, merchant["btcWalletId"], invoice.payment_request)
    assert not raised.value.retryable
    assert_no_key_leak(raised.value, CANARY_KEY, caplog)


def test_payload_error_fault_raises_rejected(blink, sim_clean, merchant, caplog):
    client, _ = blink
    sim_clean.fault("lnInvoiceCreate", "error", count=1)
    with pytest.raises(BlinkRejected) as raised:
        client.create_invoice(merchant["apiKey"], merchant["btcWalletId"], 10, None)
    assert not raised.value.retryable
    assert_no_key_leak(raised.value, merchant["apiKey"], caplog)


def test_payment_with_http_503_raises_unavailable_and_is_not_retried(
    blink, sim_clean, merchant, payer, caplog
):
    client, calls = blink
    invoice = client.create_invoice(merchant["apiKey"], merchant["btcWalletId"], 40, None)
    sim_clean.fault("lnInvoicePaymentSend", "error", count=1, http_status=503)
    with pytest.raises(BlinkUnavailable) as raised:
        client.pay_invoice(payer["apiKey"], payer["btcWalletId"], invoice.payment_request)
    assert raised.value.retryable
    # One round trip only: had the client retried, the second attempt would have paid.
    assert calls.outcomes("LnInvoicePaymentSend") == ["unavailable"]
    assert sim_clean.balance(merchant["btcWalletId"]) == 0
    assert ledger_entries_for(sim_clean, invoice.payment_hash) == []
    assert_no_key_leak(raised.value, payer["apiKey"], caplog)


def test_invoice_creation_with_http_503_is_not_retried(blink, sim_clean, merchant):
    client, calls = blink
    sim_clean.fault("lnInvoiceCreate", "error", count=1, http_status=503)
    with pytest.raises(BlinkUnavailable):
        client.create_invoice(merchant["apiKey"], merchant["btcWalletId"], 40, None)
    assert calls.outcomes("LnInvoiceCreate") == ["unavailable"]


def test_read_is_retried_after_a_single_503_and_succeeds(blink, sim_clean):
    client, calls = blink
    recipient = sim_clean.create_account(username="tip_" + secrets.token_hex(4))
    sim_clean.fault("accountDefaultWallet", "error", count=1, http_status=503)
    assert client.default_btc_wallet(recipient["username"]) == recipient["btcWalletId"]
    assert calls.outcomes("AccountDefaultWallet") == ["unavailable", "success"]


def test_read_gives_up_after_bounded_attempts_when_blink_stays_down(blink, sim_clean, merchant):
    client, calls = blink
    sim_clean.fault("me", "error", http_status=503)
    with pytest.raises(BlinkUnavailable):
        client.wallets(merchant["apiKey"])
    assert calls.outcomes("Wallets") == ["unavailable"] * 3


def test_payment_timeout_raises_promptly_and_retry_answers_already_paid(sim_clean, merchant, payer, caplog):
    calls = CallLog()
    client = make_client(sim_clean.graphql_url, read_timeout=0.5, observer=calls)
    invoice = client.create_invoice(merchant["apiKey"], merchant["btcWalletId"], 77, None)
    sim_clean.fault("lnInvoicePaymentSend", "timeout", count=1, delay_ms=3000)
    started = time.monotonic()
    with pytest.raises(BlinkTimeout) as raised:
        client.pay_invoice(payer["apiKey"], payer["btcWalletId"], invoice.payment_request)
    assert time.monotonic() - started < 2.0
    assert raised.value.retryable
    assert_no_key_leak(raised.value, payer["apiKey"], caplog)
    # The payment happened behind the timeout: the retry must not pay again.
    assert sim_clean.balance(merchant["btcWalletId"]) == 77
    assert client.pay_invoice(payer["apiKey"], payer["btcWalletId"], invoice.payment_request) is (
        PaymentStatus.ALREADY_PAID
    )
    assert sim_clean.balance(payer["btcWalletId"]) == 100_000 - 77
    assert calls.outcomes("LnInvoicePaymentSend") == ["timeout", "success"]
    client.close()


def test_pending_fault_returns_pending_status(blink, sim_clean, merchant, payer):
    client, _ = blink
    invoice = client.create_invoice(merchant["apiKey"], merchant["btcWalletId"], 5, None)
    sim_clean.fault("lnInvoicePaymentSend", "pending", count=1)
    assert client.pay_invoice(payer["apiKey"], payer["btcWalletId"], invoice.payment_request) is (
        PaymentStatus.PENDING
    )


def test_delay_shorter_than_the_timeout_still_succeeds(sim_clean, merchant):
    calls = CallLog()
    client = make_client(sim_clean.graphql_url, read_timeout=2.0, observer=calls)
    sim_clean.fault("lnInvoiceCreate", "delay", count=1, delay_ms=300)
    invoice = client.create_invoice(merchant["apiKey"], merchant["btcWalletId"], 8, None)
    assert invoice.satoshis == 8
    [(_, seconds, outcome)] = calls.calls
    assert outcome == "success" and seconds >= 0.3
    client.close()


def test_unreachable_blink_raises_unavailable():
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = make_client(f"http://127.0.0.1:{port}/graphql")
    with pytest.raises(BlinkUnavailable) as raised:
        client.invoice_status("00" * 32)
    assert raised.value.code == "network_error"
    client.close()


# ---- against a scripted HTTP server ---------------------------------------------------------


class ScriptedBlink:
    """A real HTTP server answering a queue of (status, body) and recording requests."""

    def __init__(self) -> None:
        self.answers: list[tuple[int, bytes]] = []
        self.requests: list[tuple[dict[str, str], dict]] = []
        script = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                script.requests.append((dict(self.headers), json.loads(body)))
                status, answer = script.answers.pop(0)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True  # keep-alive connections must not block shutdown
        self.server.block_on_close = False
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/graphql"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def answer(self, status: int, payload: object) -> None:
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.answers.append((status, raw))


@pytest.fixture
def scripted() -> Iterator[ScriptedBlink]:
    server = ScriptedBlink()
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


def test_request_carries_operation_name_and_key_header_only_when_given(scripted):
    client = make_client(scripted.url)
    scripted.answer(
        200, {"data": {"lnInvoicePaymentStatusByHash": {"paymentHash": "ab" * 32, "status": "PAID"}}}
    )
    scripted.answer(200, {"data": {"me": {"defaultAccount": {"wallets": []}}}})
    assert client.invoice_status("ab" * 32) is InvoiceStatus.PAID
    assert client.wallets(CANARY_KEY) == []
    (status_headers, status_body), (wallet_headers, wallet_body) = scripted.requests
    assert status_body["operationName"] == "LnInvoicePaymentStatusByHash"
    assert status_body["variables"] == {"input": {"paymentHash": "ab" * 32}}
    assert "X-API-KEY" not in {name.upper() for name in status_headers}
    assert wallet_body["operationName"] == "Wallets"
    assert wallet_headers.get("X-API-KEY") == CANARY_KEY
    client.close()


@pytest.mark.parametrize(
    ("status", "payload", "expected", "code"),
    [
        (200, b"<html>not json</html>", BlinkUnavailable, "malformed_response"),
        (200, {"data": None}, BlinkUnavailable, "malformed_response"),
        (
            200,
            {"data": {"me": {"defaultAccount": {"wallets": "nope"}}}},
            BlinkUnavailable,
            "malformed_response",
        ),
        (429, {"errors": [{"message": "slow down"}]}, BlinkUnavailable, "rate_limited"),
        (502, b"bad gateway", BlinkUnavailable, "http_502"),
        (
            200,
            {"errors": [{"message": "Too many requests", "extensions": {"code": "TOO_MANY_REQUEST"}}]},
            BlinkUnavailable,
            "blink_busy",
        ),
        (
            200,
            {"errors": [{"message": "Not authorized", "extensions": {"code": "NOT_AUTHORIZED"}}]},
            BlinkForbidden,  # a known key whose scopes do not cover the operation
            "blink_unauthorized",
        ),
        (403, {"error": "forbidden"}, BlinkForbidden, "blink_unauthorized"),
        (401, {"error": "invalid key"}, BlinkUnauthorized, "blink_unauthorized"),
        (
            400,
            {
                "errors": [
                    {"message": "Cannot query field", "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"}}
                ]
            },
            BlinkRejected,
            "graphql_validation_failed",
        ),
    ],
)
def test_answer_shapes_map_to_typed_errors(scripted, status, payload, expected, code):
    client = BlinkClient(scripted.url, connect_timeout=1, read_timeout=2, read_attempts=1)
    scripted.answer(status, payload)
    with pytest.raises(expected) as raised:
        client.wallets("some-key")
    assert type(raised.value) is expected
    assert raised.value.code == code
    assert raised.value.retryable is issubclass(expected, BlinkUnavailable)
    client.close()


def test_key_echoed_by_blink_in_an_error_message_is_redacted(scripted, caplog):
    caplog.set_level(logging.DEBUG)
    client = make_client(scripted.url)
    echoed = {"errors": [{"message": f"no such key {CANARY_KEY}", "code": "INVALID_INPUT"}], "invoice": None}
    scripted.answer(200, {"data": {"lnInvoiceCreate": echoed}})
    scripted.answer(200, {"errors": [{"message": f"bad key {CANARY_KEY}"}]})
    errors: list[BlinkError] = []
    for _ in range(2):
        with pytest.raises(BlinkError) as raised:
            client.create_invoice(CANARY_KEY, "wallet", 10, None)
        errors.append(raised.value)
    assert [error.code for error in errors] == ["invalid_input", "graphql_error"]
    for error in errors:
        assert_no_key_leak(error, CANARY_KEY, caplog)
    client.close()


def test_payment_failure_status_raises_rejected(scripted):
    client = make_client(scripted.url)
    scripted.answer(200, {"data": {"lnInvoicePaymentSend": {"status": "FAILURE", "errors": []}}})
    with pytest.raises(BlinkRejected) as raised:
        client.pay_invoice("key", "wallet", "lnbc1")
    assert raised.value.code == "payment_failed"
    client.close()


def test_invoice_for_another_amount_than_asked_is_refused(scripted):
    client = make_client(scripted.url)
    invoice = {"paymentRequest": "lnbc1", "paymentHash": "cd" * 32, "satoshis": 999}
    scripted.answer(200, {"data": {"lnInvoiceCreate": {"invoice": invoice, "errors": []}}})
    with pytest.raises(BlinkRejected) as raised:
        client.create_invoice("key", "wallet", 10, None)
    assert raised.value.code == "amount_mismatch"
    client.close()


def test_zero_or_fractional_sats_are_refused_before_calling_blink(scripted):
    client = make_client(scripted.url)
    for sats in (0, -1, 1.5, True):
        with pytest.raises(ValueError):
            client.create_invoice("key", "wallet", sats, None)  # type: ignore[arg-type]
    assert scripted.requests == []
    client.close()
