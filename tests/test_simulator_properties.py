"""Property: whatever sequence of invoices, payments, double payments and customer payments runs,
no sat is created or lost. Only customer payments (and opening balances, recorded the same way)
bring money in; the ledger explains every balance; an invoice is paid at most once."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
)
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


def assert_money_conserved(sim, accounts: list[dict], expected: dict[str, int] | None = None) -> None:
    wallets = {account["btcWalletId"] for account in accounts}
    transfers = [t for t in sim.ledger() if t["toWalletId"] in wallets or t["fromWalletId"] in wallets]
    balances = {wallet: sim.balance(wallet) for wallet in wallets}

    # Money moved only among these wallets or came from outside.
    assert all(t["fromWalletId"] is None or t["fromWalletId"] in wallets for t in transfers)
    assert all(t["toWalletId"] in wallets for t in transfers)
    outside_money = sum(t["sats"] for t in transfers if t["fromWalletId"] is None)
    assert sum(balances.values()) == outside_money
    for wallet, balance in balances.items():
        received = sum(t["sats"] for t in transfers if t["toWalletId"] == wallet)
        sent = sum(t["sats"] for t in transfers if t["fromWalletId"] == wallet)
        assert balance == received - sent >= 0
    hashes = Counter(t["paymentHash"] for t in transfers if t["paymentHash"] is not None)
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
    accounts = open_accounts(sim, opening)
    model = {a["btcWalletId"]: balance for a, balance in zip(accounts, opening, strict=True)}
    invoices: list[tuple[dict, dict]] = []  # (invoice, recipient account)
    paid: set[str] = set()
    expired: set[str] = set()

    for op in operations:
        if op[0] == "invoice":
            invoices.append((issue(sim, accounts[op[1]], op[2]), accounts[op[1]]))
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
    amounts=st.lists(st.tuples(account_index, st.integers(1, 400)), min_size=1, max_size=6),
    attempts=st.lists(
        st.tuples(st.sampled_from(["pay", "customer_pay"]), account_index, invoice_ref),
        min_size=1,
        max_size=30,
    ),
)
def test_concurrent_payments_and_double_payments_conserve_money(sim_clean, opening, amounts, attempts):
    sim = sim_clean
    accounts = open_accounts(sim, opening)
    invoices = [issue(sim, accounts[owner], sats) for owner, sats in amounts]

    def attempt(spec: tuple[str, int, int]) -> tuple[str, str]:
        kind, payer, ref = spec
        invoice = invoices[ref % len(invoices)]
        if kind == "customer_pay":
            return invoice["paymentHash"], sim.pay(invoice["paymentHash"]).get("status")
        return invoice["paymentHash"], wallet_pay(sim, accounts[payer], invoice)["status"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(attempt, attempts))

    successes = Counter(h for h, status in outcomes if status in ("SUCCESS", "PAID"))
    assert all(count == 1 for count in successes.values()), "one invoice reported paid twice"
    ledger_hashes = {t["paymentHash"] for t in sim.ledger()}
    assert set(successes) <= ledger_hashes
    assert_money_conserved(sim, accounts)
