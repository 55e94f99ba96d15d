"""What the chaos run breaks, and when: (fraction of the sales paid, description, action).

Each action blocks until its fault is over (or handed to the simulator) and returns a short
detail for the report: what exactly it hit.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import psycopg

from bench.chaos_stack import MOODY_WALLET, ChaosStack
from bench.proxy import FaultyProxy

Action = Callable[[], str]

# Leg payouts of splits the worker process holds, committed and not yet answered by Blink.
_WORKER_PAYOUTS_IN_FLIGHT = """
SELECT count(*) FROM payment_legs l JOIN payment_splits s ON s.id = l.split_id
WHERE l.status = 'sending' AND s.claimed_by LIKE 'worker:%'
"""
WORKER_PAYOUT_WAIT_SECONDS = 45.0
CUT_SECONDS = 2.0
# How the moody Lightning Address wallet misbehaves in turn, each for HOSTILE_SECONDS, at the
# callback (its pay request stays sound, so sales to it are still taken).
HOSTILE_MODES = (
    {"mode": "wrong_amount"}, {"mode": "amountless"}, {"mode": "expired"},
    {"mode": "error", "step": "callback"}, {"mode": "slow", "step": "callback", "delayMs": 8000},
    {"mode": "not_json", "step": "callback"}, {"mode": "oversized", "step": "callback"},
    {"mode": "redirect", "step": "callback"},
)
HOSTILE_SECONDS = 1.5
STALL_SECONDS = 4.0


def schedule(stack: ChaosStack) -> list[tuple[float, str, Action]]:
    sim = stack.sim
    assert sim is not None

    def valkey_crash() -> str:
        stack.kill_valkey()
        time.sleep(3)
        stack.start_valkey()
        return "restarted 3 s later"

    def postgres_sigkill() -> str:
        killed = stack.kill_postgres()
        time.sleep(2)
        stack.start_postgres()
        return f"{killed} processes killed; started 2 s later (crash recovery)"

    def postgres_restart() -> str:
        stack.stop_postgres()
        time.sleep(2)
        stack.start_postgres()
        return "started 2 s later"

    def kill_gunicorn_worker() -> str:
        return f"pid {stack.kill_gunicorn_worker()}"

    def kill_worker_mid_payout() -> str:
        # Every payout answers 3 s late, so the worker is caught with stored invoices whose
        # payments are in flight (the simulator still makes them after the kill).
        sim.fault("lnInvoicePaymentSend", "delay", count=400, delay_ms=3000)
        try:
            in_flight = _wait_for_worker_payouts(stack)
            pid = stack.kill_worker()
        finally:
            sim.clear_faults()
        return f"pid {pid}, {in_flight} of its leg payouts in flight"

    def postgres_cut() -> str:
        return _blackout(stack.postgres_proxy, CUT_SECONDS)

    def blink_cut() -> str:
        # Blink answers slowly for a moment, so the cut finds calls (payouts among them) mid-request.
        sim.fault("*", "delay", count=300, delay_ms=400)
        time.sleep(1.0)
        try:
            return _blackout(stack.blink_proxy, CUT_SECONDS)
        finally:
            sim.clear_faults()

    def stall(proxy: FaultyProxy) -> Action:
        return lambda: _stall(proxy, STALL_SECONDS)

    def payment_faults() -> str:
        sim.fault("lnInvoicePaymentSend", "timeout", count=15, delay_ms=4000)
        sim.fault("lnInvoicePaymentSend", "error", count=25)
        sim.fault("lnInvoicePaymentSend", "error", count=10, http_status=503)
        return "15 timeouts (paid, answer lost), 25 failures, 10 HTTP 503"

    def held_payouts() -> str:
        sim.clear_faults()
        sim.fault("lnInvoicePaymentSend", "pending_then_failure", count=10, delay_ms=1500)
        sim.fault("lnInvoicePaymentSend", "pending_then_success", count=10, delay_ms=1500)
        return "10 held PENDING then failed (refunded), 10 held PENDING then succeeded"

    def hostile_wallet() -> str:
        for mode in HOSTILE_MODES:
            sim.update_lnurl_wallet(MOODY_WALLET, **{"step": "both", **mode})
            time.sleep(HOSTILE_SECONDS)
        sim.update_lnurl_wallet(MOODY_WALLET, mode="normal", step="both")
        names = ", ".join(m["mode"] for m in HOSTILE_MODES)
        return f"{names}, {HOSTILE_SECONDS:.1f} s each, then honest again"

    def clear_faults() -> str:
        sim.clear_faults()
        return ""

    steps = [
        (0.05, "Valkey SIGKILLed", valkey_crash),
        (0.12, "Postgres SIGKILLed (postmaster and backends)", postgres_sigkill),
        (0.20, "Postgres stopped (fast)", postgres_restart),
        (0.27, "a gunicorn worker SIGKILLed", kill_gunicorn_worker),
        (0.34, "the worker process SIGKILLed between storing leg invoices and paying them",
         kill_worker_mid_payout),
        (0.44, "app and worker cut off from Postgres (proxy)", postgres_cut),
        (0.51, "Postgres stalled (proxy)", stall(stack.postgres_proxy)),
        (0.58, "app and worker cut off from Blink (proxy)", blink_cut),
        (0.65, "Blink stalled (proxy), longer than the service's 2 s read timeout", stall(stack.blink_proxy)),
        (0.72, "lnInvoicePaymentSend faults", payment_faults),
        (0.80, "lnInvoicePaymentSend held PENDING", held_payouts),
        (0.90, "simulator faults cleared", clear_faults),
    ]
    if stack.lightning_tipees:
        steps.append((0.38, f"Lightning Address wallet {MOODY_WALLET} hostile at its callback",
                      hostile_wallet))
    return sorted(steps, key=lambda step: step[0])


def _wait_for_worker_payouts(stack: ChaosStack) -> int:
    """Waits until the worker process has leg payouts in flight; returns how many."""
    assert stack.postgres is not None
    deadline = time.monotonic() + WORKER_PAYOUT_WAIT_SECONDS
    with psycopg.connect(stack.postgres.url, autocommit=True, connect_timeout=5) as conn:
        while time.monotonic() < deadline:
            (count,) = conn.execute(_WORKER_PAYOUTS_IN_FLIGHT).fetchone()
            if count:
                return int(count)
            time.sleep(0.05)
    raise TimeoutError(f"the worker had no payout in flight within {WORKER_PAYOUT_WAIT_SECONDS:.0f} s")


def _blackout(proxy: FaultyProxy, seconds: float) -> str:
    cut = proxy.blackout(seconds)
    time.sleep(seconds)
    return f"{cut} connections cut mid-flight, new ones reset on accept for {seconds:.0f} s"


def _stall(proxy: FaultyProxy, seconds: float) -> str:
    proxy.stall(seconds)
    time.sleep(seconds)
    return f"no byte moved for {seconds:.0f} s"
