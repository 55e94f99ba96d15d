"""The chaos run's books: the simulator's ledger against the database, once the stack settled.

Every customer payment must be one split, completed, each leg paid exactly once (one settled
payout of the leg's invoice), to the right wallet, for the leg's sats. A payout Blink held and
then failed was refunded: it is no payment. Sats are conserved: every wallet's balance is what
the ledger says, their sum is the money paid in less what left the bank (external payments and
their routing fees), and the POS wallet keeps nothing but the fee reserves that Lightning Address
legs did not spend (a leg pays its recipient the leg less the reserve, and the fee from it).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from bench.store_bench import open_store
from service.domain.model import Leg, LegKind, Payout, Split, SplitStatus

MERCHANT = "<merchant>"  # not a valid Blink username, so it cannot clash with a tipee
UNSETTLED = (SplitStatus.PAID, SplitStatus.FORWARDING, SplitStatus.PENDING)
SUCCESS, FAILURE, PENDING = "SUCCESS", "FAILURE", "PENDING"


@dataclass
class Books:
    """The outcome of the check; `ok` only when every paid invoice was forwarded exactly once."""

    sales: int = 0
    forwarded: int = 0
    duplicated: int = 0
    lost: int = 0
    stuck: int = 0
    fees: int = 0  # routing fees the POS wallet paid (external legs)
    kept_reserve: int = 0  # what Lightning Address legs' fee reserves left in the POS wallet
    lightning_legs: int = 0
    lightning_retried: int = 0  # Lightning Address legs paid only after a failed attempt
    refunded: int = 0  # payouts Blink held and then failed (refunded, paid again later)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        clean = self.duplicated == self.lost == self.stuck == 0
        return clean and self.forwarded == self.sales and not self.problems

    def line(self) -> str:
        return (
            f"sales {self.sales}, forwarded {self.forwarded}, duplicated {self.duplicated}, "
            f"lost {self.lost}, stuck {self.stuck}; fees {self.fees} sats, unspent fee reserves "
            f"{self.kept_reserve} sats, refunded payouts {self.refunded}; Lightning Address legs "
            f"{self.lightning_legs} ({self.lightning_retried} paid after a failed attempt)"
        )


def settle(stack, payment_hashes: list[str], timeout: float) -> float:
    """Waits until no sale is left unsettled (or the timeout); returns the seconds it took."""
    assert stack.postgres is not None and stack.valkey is not None
    began = time.monotonic()
    with open_store(stack.postgres.url, stack.valkey.url, stack.encryption_key) as store:
        remaining = list(payment_hashes)
        while remaining and time.monotonic() - began < timeout:
            remaining = [h for h in remaining if _unsettled(store.get_fresh(h))]
            if remaining:
                time.sleep(1.0)
    return time.monotonic() - began


def _unsettled(split: Split | None) -> bool:
    return split is None or split.status in UNSETTLED


def check_books(stack, tipees: list[dict], lightning_tipees: list[dict] = ()) -> Books:
    """The simulator's ledger against the database: every customer payment is one sale.
    `tipees` are Blink accounts; `lightning_tipees` foreign wallets ({username: address, wallet})."""
    assert stack.sim is not None and stack.accounts is not None and stack.postgres is not None
    assert stack.valkey is not None
    accounts = stack.accounts
    pos_wallet = accounts.pos["btcWalletId"]
    # Where each leg must land: the merchant's wallet for the base, each tipee's for their tip.
    wallet_of = {t["username"]: t["btcWalletId"] for t in tipees}
    wallet_of[MERCHANT] = accounts.merchant["btcWalletId"]
    ledger = stack.sim.ledger()
    customer_payments = [t for t in ledger if t["fromWalletId"] is None and t["paymentHash"]]
    from_pos = [t for t in ledger if t["fromWalletId"] == pos_wallet]
    settled = [t for t in from_pos if t["status"] == SUCCESS]
    payouts = Counter(t["paymentHash"] for t in settled)
    payout_by_hash = {t["paymentHash"]: t for t in settled}
    books = Books(sales=len(customer_payments))
    books.fees = sum(t["feeSats"] for t in settled)
    books.refunded = sum(1 for t in from_pos if t["status"] == FAILURE)
    held = [t for t in from_pos if t["status"] == PENDING]
    if held:
        books.problems.append(f"{len(held)} payouts still held PENDING at Blink")
    explained: set[str] = set()
    received: Counter[str] = Counter()  # by Lightning Address: what its legs record as received
    with open_store(stack.postgres.url, stack.valkey.url, stack.encryption_key) as store:
        for payment in customer_payments:
            split = store.get_fresh(payment["paymentHash"])
            if split is None or payment["toWalletId"] != pos_wallet or payment["sats"] != split.invoice_sats:
                books.lost += 1
                books.problems.append(f"customer payment {payment['paymentHash'][:12]} matches no split")
                continue
            if split.status in UNSETTLED:
                books.stuck += 1
                continue
            verdict = _check_legs(split, payouts, payout_by_hash, wallet_of, explained)
            if verdict == "forwarded" and split.status is SplitStatus.COMPLETED:
                books.forwarded += 1
                books.kept_reserve += sum(_reserve_left(leg) for leg in split.legs)
                for leg in split.legs:
                    if leg.payout is Payout.LNURL:
                        books.lightning_legs += 1
                        books.lightning_retried += leg.attempts > 1
                        received[leg.recipient.lower()] += leg.received_sats or 0
            elif verdict == "duplicated":
                books.duplicated += 1
            else:
                books.lost += 1
                books.problems.append(f"split {split.payment_hash[:12]} {split.status}: {verdict}")
    unexplained = [h for h in payouts if h not in explained]
    if unexplained:
        books.duplicated += len(unexplained)
        books.problems.append(f"{len(unexplained)} payouts from the POS wallet belong to no leg")
    _check_conservation(stack, tipees, ledger, books)
    for tipee in lightning_tipees:
        balance = stack.sim.lnurl_wallet(tipee["wallet"])["balance"]
        if balance != received[tipee["username"].lower()]:
            books.problems.append(
                f"{tipee['username']} holds {balance} sats, its legs record "
                f"{received[tipee['username'].lower()]} received"
            )
    return books


def _check_legs(
    split: Split,
    payouts: Counter[str],
    payout_by_hash: dict[str, dict],
    wallet_of: dict[str, str],
    explained: set[str],
) -> str:
    if sum(leg.sats for leg in split.legs) != split.invoice_sats:
        return "legs do not add up to the invoice"
    for leg in split.legs:
        if leg.payment_hash is None or payouts[leg.payment_hash] == 0:
            return f"{leg.kind} leg never paid"
        explained.add(leg.payment_hash)
        if payouts[leg.payment_hash] > 1:
            return "duplicated"
        payout = payout_by_hash[leg.payment_hash]
        if leg.payout is Payout.LNURL:
            problem = _check_external(leg, payout)
            if problem:
                return problem
            continue
        expected_wallet = wallet_of.get(MERCHANT if leg.kind is LegKind.BASE else leg.recipient)
        if payout["toWalletId"] != expected_wallet or payout["sats"] != leg.sats:
            return f"{leg.kind} leg paid {payout['sats']} sats to the wrong place"
    return "forwarded"


def _check_external(leg: Leg, payout: dict) -> str | None:
    """A Lightning Address leg: paid out of Blink, for what the leg records, never above the leg."""
    where = f"{leg.kind} leg to {leg.recipient}"
    if payout["toWalletId"] is not None:
        return f"{where} paid inside Blink"
    if leg.received_sats is None or leg.fee_sats is None:
        return f"{where} paid but its amount or fee is not recorded"
    if (payout["sats"], payout["feeSats"]) != (leg.received_sats, leg.fee_sats):
        return (
            f"{where} records {leg.received_sats} + fee {leg.fee_sats}, "
            f"Blink paid {payout['sats']} + fee {payout['feeSats']}"
        )
    if leg.received_sats + leg.fee_sats > leg.sats:
        return f"{where} paid out {leg.received_sats + leg.fee_sats} sats for a {leg.sats}-sat leg"
    return None


def _reserve_left(leg: Leg) -> int:
    if leg.payout is not Payout.LNURL:
        return 0
    return leg.sats - (leg.received_sats or 0) - (leg.fee_sats or 0)


def ledger_balances(ledger: list[dict]) -> Counter[str]:
    """Each wallet's balance as the ledger has it: the payer is debited sats + fee unless the
    payment failed (refunded); the target is credited only once it succeeded."""
    balances: Counter[str] = Counter()
    for transfer in ledger:
        if transfer["toWalletId"] is not None and transfer["status"] == SUCCESS:
            balances[transfer["toWalletId"]] += transfer["sats"]
        if transfer["fromWalletId"] is not None and transfer["status"] != FAILURE:
            balances[transfer["fromWalletId"]] -= transfer["sats"] + transfer["feeSats"]
    return balances


def _check_conservation(stack, tipees: list[dict], ledger: list[dict], books: Books) -> None:
    assert stack.sim is not None and stack.accounts is not None
    accounts = stack.accounts
    wallets = [accounts.pos, accounts.merchant, *tipees]
    balances = {w["btcWalletId"]: stack.sim.balance(w["btcWalletId"]) for w in wallets}
    paid_in = sum(t["sats"] for t in ledger if t["fromWalletId"] is None)
    left_the_bank = sum(
        t["sats"] + t["feeSats"]
        for t in ledger
        if t["toWalletId"] is None and t["fromWalletId"] is not None and t["status"] != FAILURE
    )
    if sum(balances.values()) != paid_in - left_the_bank:
        books.problems.append(
            f"sats not conserved: balances {sum(balances.values())} != paid in {paid_in} "
            f"- paid out of the bank {left_the_bank}"
        )
    expected = ledger_balances(ledger)
    for wallet_id, balance in balances.items():
        if expected[wallet_id] != balance:
            books.problems.append(f"wallet {wallet_id[:8]} balance {balance} != ledger {expected[wallet_id]}")
    # Every sale paid out in full, but for what fee reserves were not spent on fees.
    left = balances[accounts.pos["btcWalletId"]]
    if books.stuck == 0 and left != books.kept_reserve:
        books.problems.append(
            f"{left} sats left in the POS wallet, {books.kept_reserve} of them unspent fee reserves"
        )
