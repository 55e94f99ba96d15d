"""The Blink simulator over real HTTP: Blink's operations, money rules, faults, webhooks, concurrency."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import bolt11
import pytest
import requests
from standardwebhooks import Webhook, WebhookVerificationError

CREATE_INVOICE = """
mutation Create($input: LnInvoiceCreateInput!) {
  lnInvoiceCreate(input: $input) {
    errors { message code path } invoice { paymentRequest paymentHash satoshis }
  }
}"""
CREATE_FOR_RECIPIENT = """
mutation ForRecipient($input: LnInvoiceCreateOnBehalfOfRecipientInput!) {
  lnInvoiceCreateOnBehalfOfRecipient(input: $input) {
    errors { message code } invoice { paymentRequest paymentHash satoshis paymentStatus }
  }
}"""
PAY = """
mutation Pay($input: LnInvoicePaymentInput!) {
  lnInvoicePaymentSend(input: $input) { errors { message code } status }
}"""
DEFAULT_WALLET = """
query Wallet($username: Username!, $currency: WalletCurrency) {
  accountDefaultWallet(username: $username, walletCurrency: $currency) { id currency }
}"""
STATUS_BY_HASH = """
query ByHash($hash: PaymentHash!) {
  lnInvoicePaymentStatusByHash(input: {paymentHash: $hash}) { status paymentHash paymentPreimage }
}"""
STATUS_BY_REQUEST = """
query ByRequest($pr: LnPaymentRequest!) {
  lnInvoicePaymentStatusByPaymentRequest(input: {paymentRequest: $pr}) { status paymentHash }
}"""
ME = "query { me { defaultAccount { id wallets { id walletCurrency balance } } } }"


def gql(sim, query, variables=None, api_key=None, timeout=10.0) -> requests.Response:
    return sim.graphql(query, variables, api_key=api_key, timeout=timeout)


def create_invoice(sim, account, sats, memo="", expires_in=None) -> dict:
    variables = {"input": {"walletId": account["btcWalletId"], "amount": sats, "memo": memo}}
    if expires_in is not None:
        variables["input"]["expiresIn"] = expires_in
    response = gql(sim, CREATE_INVOICE, variables, account["apiKey"])
    assert response.status_code == 200
    return response.json()["data"]["lnInvoiceCreate"]


def new_invoice(sim, account, sats, memo="") -> dict:
    payload = create_invoice(sim, account, sats, memo)
    assert payload["errors"] == []
    return payload["invoice"]


def pay(sim, payer, payment_request, memo="", timeout=10.0) -> dict:
    variables = {"input": {"walletId": payer["btcWalletId"], "paymentRequest": payment_request, "memo": memo}}
    response = gql(sim, PAY, variables, payer["apiKey"], timeout=timeout)
    assert response.status_code == 200, response.text
    return response.json()["data"]["lnInvoicePaymentSend"]


def transfers_for(sim, payment_hash) -> list[dict]:
    return [t for t in sim.ledger() if t["paymentHash"] == payment_hash]


# Invoices ------------------------------------------------------------------------------------------


def test_invoice_is_a_bolt11_for_the_amount_whose_hash_is_sha256_of_the_preimage(sim_clean):
    merchant = sim_clean.create_account()
    invoice = new_invoice(sim_clean, merchant, 1234, memo="coffee ☕")

    decoded = bolt11.decode(invoice["paymentRequest"])
    preimage = bytes.fromhex(sim_clean.invoice(invoice["paymentHash"])["preimage"])

    assert invoice["satoshis"] == 1234
    assert decoded.amount_msat == 1234 * 1000
    assert decoded.payment_hash == invoice["paymentHash"] == hashlib.sha256(preimage).hexdigest()
    assert decoded.description == "coffee ☕"
    assert decoded.expiry == 24 * 3600  # BTC invoices default to 24 h
    assert decoded.payee == sim_clean.health()["nodePubkey"]  # signed with the simulator's node key


def test_expires_in_minutes_sets_the_invoice_expiry(sim_clean):
    merchant = sim_clean.create_account()
    payload = create_invoice(sim_clean, merchant, 10, expires_in=5)
    assert bolt11.decode(payload["invoice"]["paymentRequest"]).expiry == 300


def test_zero_sat_invoice_is_rejected_with_a_payload_error(sim_clean):
    merchant = sim_clean.create_account()
    payload = create_invoice(sim_clean, merchant, 0)
    assert payload["invoice"] is None
    assert payload["errors"][0]["code"] == "INVALID_INPUT"
    assert payload["errors"][0]["message"]


def test_memo_of_639_bytes_is_accepted_and_640_bytes_rejected(sim_clean):
    merchant = sim_clean.create_account()
    accepted = create_invoice(sim_clean, merchant, 5, memo="é" * 319 + "x")  # 639 UTF-8 bytes
    rejected = create_invoice(sim_clean, merchant, 5, memo="é" * 320)  # 640 UTF-8 bytes
    assert accepted["errors"] == []
    assert bolt11.decode(accepted["invoice"]["paymentRequest"]).description == "é" * 319 + "x"
    assert rejected["invoice"] is None
    assert rejected["errors"][0]["code"] == "INVALID_INPUT"


def test_invoice_on_another_accounts_wallet_is_rejected(sim_clean):
    merchant, stranger = sim_clean.create_account(), sim_clean.create_account()
    variables = {"input": {"walletId": merchant["btcWalletId"], "amount": 10}}
    payload = gql(sim_clean, CREATE_INVOICE, variables, stranger["apiKey"]).json()["data"]["lnInvoiceCreate"]
    assert payload["invoice"] is None and payload["errors"][0]["code"] == "INVALID_INPUT"


def test_invoice_on_a_usd_wallet_is_rejected(sim_clean):
    merchant = sim_clean.create_account()
    variables = {"input": {"walletId": merchant["usdWalletId"], "amount": 10}}
    payload = gql(sim_clean, CREATE_INVOICE, variables, merchant["apiKey"]).json()["data"]["lnInvoiceCreate"]
    assert payload["invoice"] is None and payload["errors"]


def test_invoice_on_behalf_of_recipient_needs_no_key_and_credits_the_recipient(sim_clean):
    recipient, payer = sim_clean.create_account(), sim_clean.create_account(balance=100)
    variables = {"input": {"recipientWalletId": recipient["btcWalletId"], "amount": 21, "memo": "tip"}}
    response = gql(sim_clean, CREATE_FOR_RECIPIENT, variables)
    payload = response.json()["data"]["lnInvoiceCreateOnBehalfOfRecipient"]
    assert payload["errors"] == [] and payload["invoice"]["paymentStatus"] == "PENDING"

    assert pay(sim_clean, payer, payload["invoice"]["paymentRequest"])["status"] == "SUCCESS"
    assert sim_clean.balance(recipient["btcWalletId"]) == 21
    assert sim_clean.balance(payer["btcWalletId"]) == 79


def test_invoice_on_behalf_of_an_unknown_wallet_is_rejected(sim_clean):
    variables = {"input": {"recipientWalletId": "00000000-0000-0000-0000-000000000000", "amount": 21}}
    payload = gql(sim_clean, CREATE_FOR_RECIPIENT, variables).json()["data"][
        "lnInvoiceCreateOnBehalfOfRecipient"
    ]
    assert payload["invoice"] is None and payload["errors"][0]["code"] == "INVALID_INPUT"


# Authentication ------------------------------------------------------------------------------------


def test_missing_api_key_is_a_top_level_not_authorized_error(sim_clean):
    merchant = sim_clean.create_account()
    response = gql(sim_clean, CREATE_INVOICE, {"input": {"walletId": merchant["btcWalletId"], "amount": 10}})
    body = response.json()
    assert response.status_code == 200
    assert body["data"] is None
    assert body["errors"][0]["message"] == "Not authorized"
    assert body["errors"][0]["extensions"]["code"] == "NOT_AUTHORIZED"
    assert body["errors"][0]["path"] == ["lnInvoiceCreate"]


def test_unknown_api_key_is_rejected_with_http_401_before_graphql_runs(sim_clean):
    merchant = sim_clean.create_account()
    variables = {"input": {"walletId": merchant["btcWalletId"], "amount": 10}}
    response = gql(sim_clean, CREATE_INVOICE, variables, api_key="blink_not_a_real_key")
    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"]["code"] == "NOT_AUTHENTICATED"
    assert "blink_not_a_real_key" not in response.text


def test_me_lists_the_accounts_wallets_with_balances(sim_clean):
    merchant = sim_clean.create_account(balance=700)
    body = gql(sim_clean, ME, api_key=merchant["apiKey"]).json()
    wallets = {w["id"]: w for w in body["data"]["me"]["defaultAccount"]["wallets"]}
    assert wallets == {
        merchant["btcWalletId"]: {"id": merchant["btcWalletId"], "walletCurrency": "BTC", "balance": 700},
        merchant["usdWalletId"]: {"id": merchant["usdWalletId"], "walletCurrency": "USD", "balance": 0},
    }


def test_me_without_a_key_is_null_with_a_not_authorized_error(sim_clean):
    body = gql(sim_clean, ME).json()
    assert body["data"] == {"me": None}
    assert body["errors"][0]["extensions"]["code"] == "NOT_AUTHORIZED"


# Selections, aliases, fragments and malformed queries -----------------------------------------------


def test_answer_has_exactly_the_selected_fields_under_their_aliases(sim_clean):
    merchant = sim_clean.create_account(balance=5)
    query = """
    fragment W on Wallet { walletId: id ... on BTCWallet { sats: balance } }
    query Mine($name: Username!) {
      account: me { defaultAccount { __typename wallets { __typename ...W } } }
      btc: accountDefaultWallet(username: $name, walletCurrency: BTC) { currency }
    }"""
    data = gql(sim_clean, query, {"name": merchant["username"]}, api_key=merchant["apiKey"]).json()["data"]
    assert data["btc"] == {"currency": "BTC"}
    assert data["account"]["defaultAccount"]["__typename"] == "ConsumerAccount"
    assert {"__typename": "BTCWallet", "walletId": merchant["btcWalletId"], "sats": 5} in (
        data["account"]["defaultAccount"]["wallets"]
    )
    assert {"__typename": "UsdWallet", "walletId": merchant["usdWalletId"]} in data["account"][
        "defaultAccount"
    ]["wallets"]


def test_syntax_error_is_http_400_with_graphql_parse_failed(sim_clean):
    response = sim_clean.graphql("mutation { lnInvoiceCreate(input: {")
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"


def test_query_invalid_against_the_schema_is_http_400_with_validation_failed(sim_clean):
    response = sim_clean.graphql("query { me { noSuchField } }")
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"


def test_operation_the_simulator_does_not_implement_is_a_not_implemented_error(sim_clean):
    body = sim_clean.graphql("query { globals { network } }").json()
    assert body["errors"][0]["extensions"]["code"] == "NOT_IMPLEMENTED"


# Usernames -----------------------------------------------------------------------------------------


def test_default_wallet_with_btc_currency_is_the_btc_wallet_and_without_it_usd(sim_clean):
    merchant = sim_clean.create_account()
    with_btc = gql(sim_clean, DEFAULT_WALLET, {"username": merchant["username"].upper(), "currency": "BTC"})
    without = gql(sim_clean, DEFAULT_WALLET, {"username": merchant["username"]})
    assert with_btc.json()["data"]["accountDefaultWallet"] == {
        "id": merchant["btcWalletId"],
        "currency": "BTC",
    }
    assert without.json()["data"]["accountDefaultWallet"] == {
        "id": merchant["usdWalletId"],
        "currency": "USD",
    }


def test_unknown_username_is_a_top_level_not_found_error(sim_clean):
    body = gql(sim_clean, DEFAULT_WALLET, {"username": "nobody_" + secrets.token_hex(4)}).json()
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    assert body["errors"][0]["path"] == ["accountDefaultWallet"]


@pytest.mark.parametrize("username", ["ab", "1abc", "3abc", "bc1abc", "lnbc1abc", "has-dash", "x" * 51])
def test_usernames_breaking_blinks_rule_are_refused(sim_clean, username):
    response = requests.post(f"{sim_clean.url}/sim/accounts", json={"username": username}, timeout=5)
    assert response.status_code == 400
    body = gql(sim_clean, DEFAULT_WALLET, {"username": username}).json()
    assert body["errors"][0]["extensions"]["code"] == "INVALID_INPUT"


def test_usernames_are_case_insensitive_and_unique(sim_clean):
    name = "Case_" + secrets.token_hex(4)
    sim_clean.create_account(username=name)
    response = requests.post(f"{sim_clean.url}/sim/accounts", json={"username": name.lower()}, timeout=5)
    assert response.status_code == 409


# Payments ------------------------------------------------------------------------------------------


def test_payment_moves_the_sats_and_a_second_payment_is_already_paid_moving_nothing(sim_clean):
    merchant, payer = sim_clean.create_account(), sim_clean.create_account(balance=1000)
    invoice = new_invoice(sim_clean, merchant, 300)

    first = pay(sim_clean, payer, invoice["paymentRequest"], memo="order 7")
    second = pay(sim_clean, payer, invoice["paymentRequest"])

    assert first == {"errors": [], "status": "SUCCESS"}
    assert second == {"errors": [], "status": "ALREADY_PAID"}
    assert sim_clean.balance(payer["btcWalletId"]) == 700
    assert sim_clean.balance(merchant["btcWalletId"]) == 300
    [transfer] = transfers_for(sim_clean, invoice["paymentHash"])
    assert transfer["fromWalletId"] == payer["btcWalletId"]
    assert transfer["toWalletId"] == merchant["btcWalletId"]
    assert transfer["sats"] == 300 and transfer["memo"] == "order 7"


def test_payment_beyond_the_balance_fails_and_moves_nothing(sim_clean):
    merchant, payer = sim_clean.create_account(), sim_clean.create_account(balance=99)
    invoice = new_invoice(sim_clean, merchant, 100)

    result = pay(sim_clean, payer, invoice["paymentRequest"])

    assert result["status"] == "FAILURE"
    assert result["errors"][0]["code"] == "INSUFFICIENT_BALANCE"
    assert sim_clean.balance(payer["btcWalletId"]) == 99
    assert sim_clean.balance(merchant["btcWalletId"]) == 0
    assert transfers_for(sim_clean, invoice["paymentHash"]) == []
    assert sim_clean.invoice(invoice["paymentHash"])["status"] == "PENDING"


def test_paying_your_own_invoice_fails(sim_clean):
    merchant = sim_clean.create_account(balance=500)
    invoice = new_invoice(sim_clean, merchant, 100)
    result = pay(sim_clean, merchant, invoice["paymentRequest"])
    assert result["status"] == "FAILURE" and result["errors"][0]["code"] == "CANT_PAY_SELF"
    assert sim_clean.balance(merchant["btcWalletId"]) == 500


def test_paying_an_invoice_the_simulator_never_issued_fails(sim_clean):
    payer = sim_clean.create_account(balance=500)
    result = pay(sim_clean, payer, "lnbc10n1pforeigninvoice")
    assert result["status"] == "FAILURE" and result["errors"]
    assert sim_clean.balance(payer["btcWalletId"]) == 500


def test_expired_invoice_reports_expired_and_cannot_be_paid(sim_clean):
    merchant, payer = sim_clean.create_account(), sim_clean.create_account(balance=500)
    invoice = new_invoice(sim_clean, merchant, 100)
    sim_clean.expire(invoice["paymentHash"])

    status = gql(sim_clean, STATUS_BY_HASH, {"hash": invoice["paymentHash"]}).json()["data"]
    result = pay(sim_clean, payer, invoice["paymentRequest"])
    customer = sim_clean.pay(invoice["paymentHash"])

    assert status["lnInvoicePaymentStatusByHash"]["status"] == "EXPIRED"
    assert result["status"] == "FAILURE" and result["errors"][0]["code"] == "INVOICE_EXPIRED"
    assert customer["code"] == "invoice_expired"
    assert sim_clean.balance(payer["btcWalletId"]) == 500
    assert sim_clean.balance(merchant["btcWalletId"]) == 0


def test_status_goes_from_pending_to_paid_and_reveals_the_preimage_once_paid(sim_clean):
    merchant = sim_clean.create_account()
    invoice = new_invoice(sim_clean, merchant, 42)
    by_hash = {"hash": invoice["paymentHash"]}

    before = gql(sim_clean, STATUS_BY_HASH, by_hash).json()["data"]["lnInvoicePaymentStatusByHash"]
    assert sim_clean.pay(invoice["paymentHash"])["status"] == "PAID"
    after = gql(sim_clean, STATUS_BY_HASH, by_hash).json()["data"]["lnInvoicePaymentStatusByHash"]
    by_request = gql(sim_clean, STATUS_BY_REQUEST, {"pr": invoice["paymentRequest"]}).json()["data"]

    assert before == {"status": "PENDING", "paymentHash": invoice["paymentHash"], "paymentPreimage": None}
    assert after["status"] == "PAID"
    assert hashlib.sha256(bytes.fromhex(after["paymentPreimage"])).hexdigest() == invoice["paymentHash"]
    assert by_request["lnInvoicePaymentStatusByPaymentRequest"]["status"] == "PAID"


def test_status_of_an_unknown_hash_is_a_not_found_error(sim_clean):
    body = gql(sim_clean, STATUS_BY_HASH, {"hash": "00" * 32}).json()
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"


def test_customer_payment_credits_the_wallet_once_and_a_second_one_is_refused(sim_clean):
    merchant = sim_clean.create_account()
    invoice = new_invoice(sim_clean, merchant, 250)

    first = sim_clean.pay(invoice["paymentHash"])
    second = requests.post(f"{sim_clean.url}/sim/invoices/{invoice['paymentHash']}/pay", timeout=5)

    assert first["status"] == "PAID"
    assert second.status_code == 409 and second.json()["status"] == "ALREADY_PAID"
    assert sim_clean.balance(merchant["btcWalletId"]) == 250
    [transfer] = transfers_for(sim_clean, invoice["paymentHash"])
    assert transfer["fromWalletId"] is None and transfer["sats"] == 250


def test_fifty_concurrent_payments_of_one_invoice_pay_it_once(sim_clean):
    merchant, payer = sim_clean.create_account(), sim_clean.create_account(balance=10_000)
    invoice = new_invoice(sim_clean, merchant, 1000)

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(
            pool.map(lambda _: pay(sim_clean, payer, invoice["paymentRequest"])["status"], range(50))
        )

    assert results.count("SUCCESS") == 1
    assert results.count("ALREADY_PAID") == 49
    assert sim_clean.balance(payer["btcWalletId"]) == 9_000
    assert sim_clean.balance(merchant["btcWalletId"]) == 1000
    assert len(transfers_for(sim_clean, invoice["paymentHash"])) == 1


# Faults --------------------------------------------------------------------------------------------


def test_error_fault_gives_a_payload_error_for_count_calls_then_normal_service(sim_clean):
    merchant = sim_clean.create_account()
    sim_clean.fault("lnInvoiceCreate", "error", count=2)

    failed = [create_invoice(sim_clean, merchant, 10) for _ in range(2)]
    recovered = create_invoice(sim_clean, merchant, 10)

    for payload in failed:
        assert payload["invoice"] is None and payload["errors"][0]["code"] == "SIMULATED_FAULT"
    assert recovered["errors"] == [] and recovered["invoice"]["satoshis"] == 10


def test_error_fault_on_payment_answers_failure_and_moves_nothing(sim_clean):
    merchant, payer = sim_clean.create_account(), sim_clean.create_account(balance=100)
    invoice = new_invoice(sim_clean, merchant, 10)
    sim_clean.fault("lnInvoicePaymentSend", "error", count=1)

    result = pay(sim_clean, payer, invoice["paymentRequest"])

    assert result["status"] == "FAILURE" and result["errors"][0]["code"] == "SIMULATED_FAULT"
    assert sim_clean.balance(payer["btcWalletId"]) == 100
    assert pay(sim_clean, payer, invoice["paymentRequest"])["status"] == "SUCCESS"


def test_error_fault_with_http_status_answers_that_status_and_does_nothing(sim_clean):
    merchant, payer = sim_clean.create_account(), sim_clean.create_account(balance=100)
    invoice = new_invoice(sim_clean, merchant, 10)
    sim_clean.fault("lnInvoicePaymentSend", "error", count=1, http_status=503)

    variables = {"input": {"walletId": payer["btcWalletId"], "paymentRequest": invoice["paymentRequest"]}}
    response = gql(sim_clean, PAY, variables, payer["apiKey"])

    assert response.status_code == 503
    assert sim_clean.balance(payer["btcWalletId"]) == 100
    assert transfers_for(sim_clean, invoice["paymentHash"]) == []


def test_error_fault_on_a_query_is_a_top_level_error(sim_clean):
    merchant = sim_clean.create_account()
    sim_clean.fault("accountDefaultWallet", "error", count=1)
    body = gql(sim_clean, DEFAULT_WALLET, {"username": merchant["username"], "currency": "BTC"}).json()
    assert body["data"] is None and body["errors"][0]["extensions"]["code"] == "SIMULATED_FAULT"


def test_timeout_fault_performs_the_payment_but_the_client_times_out(sim_clean):
    merchant, payer = sim_clean.create_account(), sim_clean.create_account(balance=100)
    invoice = new_invoice(sim_clean, merchant, 10)
    sim_clean.fault("lnInvoicePaymentSend", "timeout", count=1, delay_ms=2000)

    with pytest.raises(requests.Timeout):
        pay(sim_clean, payer, invoice["paymentRequest"], timeout=0.5)

    assert sim_clean.balance(merchant["btcWalletId"]) == 10  # Blink took it
    assert pay(sim_clean, payer, invoice["paymentRequest"])["status"] == "ALREADY_PAID"
    assert sim_clean.balance(payer["btcWalletId"]) == 90


def test_pending_fault_performs_the_payment_answers_pending_then_already_paid(sim_clean):
    merchant, payer = sim_clean.create_account(), sim_clean.create_account(balance=100)
    invoice = new_invoice(sim_clean, merchant, 10)
    sim_clean.fault("lnInvoicePaymentSend", "pending", count=1)

    first = pay(sim_clean, payer, invoice["paymentRequest"])
    retry = pay(sim_clean, payer, invoice["paymentRequest"])

    assert first == {"errors": [], "status": "PENDING"}
    assert retry == {"errors": [], "status": "ALREADY_PAID"}
    assert sim_clean.balance(merchant["btcWalletId"]) == 10
    assert sim_clean.balance(payer["btcWalletId"]) == 90


def test_delay_fault_on_every_operation_slows_answers_but_they_succeed(sim_clean):
    merchant = sim_clean.create_account()
    sim_clean.fault("*", "delay", count=2, delay_ms=400)

    started = time.monotonic()
    payload = create_invoice(sim_clean, merchant, 10)
    body = gql(sim_clean, DEFAULT_WALLET, {"username": merchant["username"], "currency": "BTC"}).json()
    elapsed = time.monotonic() - started
    started = time.monotonic()
    create_invoice(sim_clean, merchant, 10)
    undelayed = time.monotonic() - started

    assert payload["errors"] == [] and body["data"]["accountDefaultWallet"]["currency"] == "BTC"
    assert elapsed >= 0.8
    assert undelayed < 0.4


def test_fault_on_another_operation_does_not_hit_and_delete_clears_faults(sim_clean):
    merchant = sim_clean.create_account()
    sim_clean.fault("lnInvoicePaymentSend", "error")
    assert create_invoice(sim_clean, merchant, 10)["errors"] == []
    assert len(requests.get(f"{sim_clean.url}/sim/faults", timeout=5).json()["faults"]) == 1

    sim_clean.clear_faults()

    payer = sim_clean.create_account(balance=10)
    invoice = new_invoice(sim_clean, merchant, 10)
    assert pay(sim_clean, payer, invoice["paymentRequest"])["status"] == "SUCCESS"


@pytest.mark.parametrize(
    "spec",
    [
        {"operation": "x", "mode": "explode"},
        {"mode": "error"},
        {"operation": "x", "mode": "error", "count": 0},
        {"operation": "x", "mode": "error", "httpStatus": 200},
    ],
)
def test_malformed_fault_is_refused(sim_clean, spec):
    assert requests.post(f"{sim_clean.url}/sim/faults", json=spec, timeout=5).status_code == 400


# Webhooks ------------------------------------------------------------------------------------------


class WebhookReceiver:
    """A real HTTP endpoint that records deliveries; the first `fail_first` answers are 500."""

    def __init__(self, fail_first: int = 0) -> None:
        self.deliveries: list[tuple[dict, bytes]] = []
        self.attempts = 0
        self.arrived = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.attempts += 1
                if receiver.attempts <= fail_first:
                    self.send_response(500)
                else:
                    receiver.deliveries.append((dict(self.headers), body))
                    receiver.arrived.set()
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *_args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}/hook"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._server.shutdown()
        self._server.server_close()


def svix_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def verify(secret: str, headers: dict, body: bytes) -> dict:
    """Svix headers are the Standard Webhooks scheme under other names."""
    lower = {k.lower(): v for k, v in headers.items()}
    standard = {
        "webhook-id": lower["svix-id"],
        "webhook-timestamp": lower["svix-timestamp"],
        "webhook-signature": lower["svix-signature"],
    }
    return Webhook(secret).verify(body, standard)


def test_customer_payment_sends_a_svix_signed_receive_webhook(sim_clean):
    merchant = sim_clean.create_account()
    secret = svix_secret()
    with WebhookReceiver() as receiver:
        sim_clean.set_webhook(receiver.url, secret)
        invoice = new_invoice(sim_clean, merchant, 777, memo="sale 1")
        sim_clean.pay(invoice["paymentHash"])
        assert receiver.arrived.wait(10)

    [(headers, body)] = receiver.deliveries
    event = verify(secret, headers, body)
    assert event["accountId"] == merchant["accountId"]
    assert event["walletId"] == merchant["btcWalletId"]
    assert event["eventType"] == "receive.lightning"
    transaction = event["transaction"]
    assert transaction["status"] == "success" and transaction["direction"] == "RECEIVE"
    assert transaction["settlementAmount"] == 777 and transaction["settlementCurrency"] == "BTC"
    assert transaction["initiationVia"] == {"type": "Lightning", "paymentHash": invoice["paymentHash"]}
    assert transaction["memo"] == "sale 1"
    with pytest.raises(WebhookVerificationError):
        verify(svix_secret(), headers, body)  # another secret does not verify


def test_wallet_payment_webhook_is_retried_after_a_failed_delivery_with_the_same_id(sim_clean):
    merchant, payer = sim_clean.create_account(), sim_clean.create_account(balance=50)
    secret = svix_secret()
    with WebhookReceiver(fail_first=1) as receiver:
        sim_clean.set_webhook(receiver.url, secret, wallet_id=merchant["btcWalletId"])
        invoice = new_invoice(sim_clean, merchant, 50)
        assert pay(sim_clean, payer, invoice["paymentRequest"])["status"] == "SUCCESS"
        assert receiver.arrived.wait(10)

    [(headers, body)] = receiver.deliveries
    assert receiver.attempts == 2
    assert (
        verify(secret, headers, body)["transaction"]["initiationVia"]["paymentHash"] == invoice["paymentHash"]
    )


def test_webhook_filtered_to_a_wallet_skips_other_wallets(sim_clean):
    merchant, other = sim_clean.create_account(), sim_clean.create_account()
    with WebhookReceiver() as receiver:
        sim_clean.set_webhook(receiver.url, svix_secret(), wallet_id=merchant["btcWalletId"])
        sim_clean.pay(new_invoice(sim_clean, other, 5)["paymentHash"])
        sim_clean.pay(new_invoice(sim_clean, merchant, 6)["paymentHash"])
        assert receiver.arrived.wait(10)
        time.sleep(0.3)
    assert [json.loads(body)["walletId"] for _, body in receiver.deliveries] == [merchant["btcWalletId"]]


def test_webhook_secret_must_be_a_svix_secret(sim_clean):
    response = requests.post(
        f"{sim_clean.url}/sim/webhooks", json={"url": "http://127.0.0.1:9/x", "secret": "plain"}, timeout=5
    )
    assert response.status_code == 400
    assert "plain" not in response.text


# Control API ---------------------------------------------------------------------------------------


def test_opening_balance_is_in_the_ledger_as_outside_money(sim_clean):
    account = sim_clean.create_account(balance=321)
    entries = [t for t in sim_clean.ledger() if t["toWalletId"] == account["btcWalletId"]]
    assert [(t["fromWalletId"], t["sats"]) for t in entries] == [(None, 321)]
    assert sim_clean.balance(account["btcWalletId"]) == 321


def test_unknown_wallet_and_invoice_are_404(sim_clean):
    assert requests.get(f"{sim_clean.url}/sim/wallets/nope", timeout=5).status_code == 404
    assert requests.post(f"{sim_clean.url}/sim/invoices/{'0' * 64}/pay", timeout=5).status_code == 404


def test_pos_account_fixture_is_opened_without_outside_money(sim, pos_account):
    # Other tests move sats through the shared POS wallet, so its balance depends on test order;
    # what must hold is that it was never funded with an opening balance.
    opening = [
        t
        for t in sim.ledger()
        if t["toWalletId"] == pos_account["btcWalletId"]
        and t["fromWalletId"] is None
        and t["paymentHash"] is None
    ]
    assert opening == []
    assert pos_account["apiKey"] and pos_account["username"]
