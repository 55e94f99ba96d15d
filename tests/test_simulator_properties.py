"""Property: whatever sequence of invoices, payments, double payments, customer payments and external
payments runs, no sat is created or lost. Only customer payments (and opening balances, recorded the
same way) bring money in; only external payments take money out (amount and routing fee); the ledger
explains every balance; an invoice is paid at most once."""

from __future__ import annotations

import math
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from coincurve import PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blinksim.invoices import encode_invoice

ACCOUNTS = 4

PAY = """
mutation Pay($input: LnInvoicePaymentInput!) {
  lnInvoicePaymentSend(input: $input) { errors { code } status }
}"""

account_index = st.integers(0, ACCOUNTS - 1)
invoice_ref = st.integers(0, 7)  # modulo the invoices issued so far: small, so invoices get paid again
operation = st.one_of(
    st.tuples(st.just("invoice"), account_index, st.integers(1, 600)),
    st.tuples(st.just("pay"), account_index, invoice_ref),
    st.tuples(st.just("customer_pay"), invoice_ref),
    st.tuples(st.just("expire"), invoice_ref),
    st.tuples(st.just("external"), account_index, st.integers(1, 600)),
)
OUTSIDE_NODE = PrivateKey()
FEE_BASE, FEE_PPM = 1, 5000
property_settings = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def open_accounts(sim, balances: list[int]) -> list[dict]:
    return [sim.create_account(balance=balance) for balance in balances]


def issue(sim, account: dict, sats: int) -> dict:
    payload = sim.create_invoice(account["apiKey"], account["btcWalletId"], sats)
    assert payload["errors"] == []
    return payload["invoice"]


def wallet_pay(sim, payer: dict, invoice: dict) -> dict:
    variables = {"input": {"walletId": payer["btcWalletId"], "paymentRequest": invoice["paymentRequest"]}}
    return sim.graphql(PAY, variables, api_key=payer["apiKey"]).json()["data"]["lnInvoicePaymentSend"]


def external_fee(sats: int) -> int:
    return FEE_BASE + math.ceil(sats * FEE_PPM / 1_000_000)


def outside_request(sats: int) -> str:
    return encode_invoice(
        OUTSIDE_NODE, amount_msat=sats * 1000, expiry_seconds=600, timestamp=int(time.time())
    ).payment_request


def assert_money_conserved(sim, accounts: list[dict], expected: dict[str, int] | None = None) -> None:
    wallets = {account["btcWalletId"] for account in accounts}
    transfers = [t for t in sim.ledger() if t["toWalletId"] in wallets or t["fromWalletId"] in wallets]
    live = [t for t in transfers if t["status"] != "FAILURE"]  # a failed payment was refunded
    balances = {wallet: sim.balance(wallet) for wallet in wallets}

    # Money moved only among these wallets, came from outside, or left to the outside with its fee.
    assert all(t["fromWalletId"] is None or t["fromWalletId"] in wallets for t in transfers)
    assert all(t["toWalletId"] is None or t["toWalletId"] in wallets for t in transfers)
    assert all(t["feeSats"] == 0 for t in transfers if t["toWalletId"] is not None)
    outside_money = sum(t["sats"] for t in live if t["fromWalletId"] is None)
    paid_out = sum(t["sats"] + t["feeSats"] for t in live if t["toWalletId"] is None)
    in_flight = sum(t["sats"] for t in live if t["toWalletId"] is not None and t["status"] == "PENDING")
    assert sum(balances.values()) == outside_money - paid_out - in_flight
    for wallet, balance in balances.items():
        received = sum(t["sats"] for t in live if t["toWalletId"] == wallet and t["status"] == "SUCCESS")
        sent = sum(t["sats"] + t["feeSats"] for t in live if t["fromWalletId"] == wallet)
        assert balance == received - sent >= 0
    hashes = Counter(t["paymentHash"] for t in live if t["paymentHash"] is not None)
    assert all(count == 1 for count in hashes.values()), "an invoice was paid twice"
    if expected is not None:
        assert balances == expected


@property_settings
@given(
    opening=st.lists(st.integers(0, 1000), min_size=ACCOUNTS, max_size=ACCOUNTS),
    operations=st.lists(operation, max_size=25),
)
def test_sequential_operations_match_the_model_and_conserve_money(sim_clean, opening, operations):
    sim = sim_clean
    sim.set_fees(FEE_BASE, FEE_PPM)
    accounts = open_accounts(sim, opening)
    model = {a["btcWalletId"]: balance for a, balance in zip(accounts, opening, strict=True)}
    invoices: list[tuple[dict, dict]] = []  # (invoice, recipient account)
    paid: set[str] = set()
    expired: set[str] = set()

    for op in operations:
        if op[0] == "invoice":
            invoices.append((issue(sim, accounts[op[1]], op[2]), accounts[op[1]]))
            continue
        if op[0] == "external":
            payer, sats = accounts[op[1]], op[2]
            result = wallet_pay(sim, payer, {"paymentRequest": outside_request(sats)})
            if model[payer["btcWalletId"]] >= sats + external_fee(sats):
                assert result["status"] == "SUCCESS"
                model[payer["btcWalletId"]] -= sats + external_fee(sats)
            else:
                assert result["errors"][0]["code"] == "INSUFFICIENT_BALANCE"
            continue
        if not invoices:
            continue
        invoice, recipient = invoices[op[-1] % len(invoices)]
        key, sats = invoice["paymentHash"], invoice["satoshis"]
        if op[0] == "expire":
            sim.expire(key)
            if key not in paid:
                expired.add(key)
        elif op[0] == "customer_pay":
            answer = sim.pay(key)
            if key in paid:
                assert answer["status"] == "ALREADY_PAID"
            elif key in expired:
                assert answer["code"] == "invoice_expired"
            else:
                assert answer["status"] == "PAID"
                paid.add(key)
                model[recipient["btcWalletId"]] += sats
        else:
            payer = accounts[op[1]]
            result = wallet_pay(sim, payer, invoice)
            if key in paid:
                assert result["status"] == "ALREADY_PAID"
            elif key in expired:
                assert result["errors"][0]["code"] == "INVOICE_EXPIRED"
            elif payer is recipient:
                assert result["errors"][0]["code"] == "CANT_PAY_SELF"
            elif model[payer["btcWalletId"]] < sats:
                assert result["status"] == "FAILURE"
                assert result["errors"][0]["code"] == "INSUFFICIENT_BALANCE"
            else:
                assert result["status"] == "SUCCESS"
                paid.add(key)
                model[payer["btcWalletId"]] -= sats
                model[recipient["btcWalletId"]] += sats

    assert_money_conserved(sim, accounts, expected=model)


@property_settings
@given(
    opening=st.lists(st.integers(0, 500), min_size=ACCOUNTS, max_size=ACCOUNTS),
    amounts=st.lists(st.tuples(account_index, st.integers(1, 400), st.booleans()), min_size=1, max_size=6),
    attempts=st.lists(
        st.tuples(st.sampled_from(["pay", "customer_pay"]), account_index, invoice_ref),
        min_size=1,
        max_size=30,
    ),
    held=st.integers(0, 3),
)
def test_concurrent_payments_and_double_payments_conserve_money(sim_clean, opening, amounts, attempts, held):
    """Some invoices are outside ones (paid with a fee); `held` payments stay PENDING a moment, then fail."""
    sim = sim_clean
    sim.set_fees(FEE_BASE, FEE_PPM)
    accounts = open_accounts(sim, opening)
    invoices = [
        {"paymentRequest": outside_request(sats), "outside": True}
        if outside
        else issue(sim, accounts[owner], sats)
        for owner, sats, outside in amounts
    ]
    if held:
        sim.fault("lnInvoicePaymentSend", "pending_then_failure", count=held, delay_ms=30)

    def attempt(spec: tuple[str, int, int]) -> tuple[str, str]:
        kind, payer, ref = spec
        invoice = invoices[ref % len(invoices)]
        if kind == "customer_pay" and not invoice.get("outside"):
            return invoice["paymentHash"], sim.pay(invoice["paymentHash"]).get("status")
        return invoice["paymentRequest"], wallet_pay(sim, accounts[payer], invoice)["status"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(attempt, attempts))
    sim.clear_faults()
    deadline = time.monotonic() + 10
    while any(t["status"] == "PENDING" for t in sim.ledger()) and time.monotonic() < deadline:
        time.sleep(0.02)  # held payments settle (as failures) within a moment

    successes = Counter(key for key, status in outcomes if status in ("SUCCESS", "PAID"))
    assert all(count == 1 for count in successes.values()), "one invoice reported paid twice"
    assert_money_conserved(sim, accounts)
