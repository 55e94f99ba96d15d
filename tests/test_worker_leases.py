"""The worker's leases on a clock the test moves: a lease left by a dead worker is taken over
only once it has run out, and a worker whose lease was taken while it held a batch pays nothing
of it. Real Postgres, Valkey and the simulator; no sleeps race the lease."""

from __future__ import annotations

from typing import Any

from blinksim.control import SimControl
from tests.fixtures.audit import split_events
from tests.fixtures.clocks import MovableClock, create_sale, transfers_by_hash, worker_with_clock

LEASE = 300


def _paid_sales(app, sim: SimControl, merchant: dict, alice: dict, count: int) -> list[str]:
    hashes = [create_sale(app, merchant, 500 + i, 100, [alice]) for i in range(count)]
    for payment_hash in hashes:
        sim.pay(payment_hash)
        app.extensions["blinkpos"].store.mark_paid(payment_hash, source="test")
    return hashes


def _owners(app, payment_hash: str) -> list[str]:
    events = split_events(app.extensions["blinkpos"].store, payment_hash)
    return [e["data"]["owner"] for e in events if e["event_type"] == "forwarding_started"]


def test_a_lease_left_by_a_dead_worker_is_taken_over_only_once_it_ran_out(
    make_sale_app, sim: SimControl, merchant: dict, tipee
):
    app = make_sale_app(forward_lease_seconds=LEASE, pending_poll_after_seconds=3600)
    store = app.extensions["blinkpos"].store
    (payment_hash,) = _paid_sales(app, sim, merchant, tipee(), 1)
    clock = MovableClock()
    # The dead worker claimed the batch and was killed before it paid anything.
    assert len(store.claim_due(clock.now, "worker:dead", LEASE, 10)) == 1

    clock.advance(seconds=LEASE - 5)
    live = worker_with_clock(app, clock, "worker:live")
    assert live.run_once().claimed == 0, "a lease still running is left alone"
    assert sim.balance(merchant["btcWalletId"]) == 0

    clock.advance(seconds=10)
    report = live.run_once()

    assert (report.claimed, report.completed) == (1, 1)
    split = store.get_fresh(payment_hash)
    assert str(split.status) == "completed"
    assert [transfers_by_hash(sim)[leg.payment_hash] for leg in split.legs] == [1, 1]
    assert _owners(app, payment_hash) == ["worker:dead", "worker:live"]


class _LosesItsBatch:
    """The worker's real store; right after the worker claims its batch, `taken_over()` runs (as
    if the worker then stalled past its lease and another worker took the batch)."""

    def __init__(self, store: Any, taken_over) -> None:
        self._store = store
        self._taken_over = taken_over

    def claim_due(self, *args: Any, **kwargs: Any):
        claimed = self._store.claim_due(*args, **kwargs)
        if claimed:
            self._taken_over()
        return claimed

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def test_a_worker_whose_lease_renewal_fails_pays_nothing_of_its_batch(
    make_sale_app, sim: SimControl, merchant: dict, tipee
):
    app = make_sale_app(forward_lease_seconds=LEASE, pending_poll_after_seconds=3600)
    store = app.extensions["blinkpos"].store
    alice = tipee()
    hashes = _paid_sales(app, sim, merchant, alice, 3)
    slow_clock = MovableClock()
    fast_clock = MovableClock(slow_clock.now)
    fast_clock.advance(seconds=LEASE + 1)
    taken = []
    stalled = worker_with_clock(app, slow_clock, "worker:stalled")
    stalled._store = _LosesItsBatch(
        stalled._store, lambda: taken.extend(store.claim_due(fast_clock.now, "worker:other", LEASE, 10))
    )

    report = stalled.run_once()

    assert len(taken) == 3, "the other worker took the whole batch"
    assert (report.claimed, report.completed) == (3, 0), "every renewal failed: nothing forwarded"
    for payment_hash in hashes:
        split = store.get_fresh(payment_hash)
        assert split.claimed_by == "worker:other"
        assert [leg.payment_hash for leg in split.legs] == [None, None], "not even invoiced"
    assert sim.balance(merchant["btcWalletId"]) == sim.balance(alice["btcWalletId"]) == 0

    # The other worker (here: once its own claim ran out) forwards each sale once.
    fast_clock.advance(seconds=LEASE + 1)
    assert worker_with_clock(app, fast_clock, "worker:other").run_once().completed == 3
    paid = transfers_by_hash(sim)
    for payment_hash in hashes:
        split = store.get_fresh(payment_hash)
        assert str(split.status) == "completed"
        assert [paid[leg.payment_hash] for leg in split.legs] == [1, 1]
    assert sim.balance(alice["btcWalletId"]) == 300
    assert sim.balance(merchant["btcWalletId"]) == sum(400 + i for i in range(3))
