"""/api/health's blinkConfig reports what Blink last answered for the POS key (checked at start,
cached, re-checked in the background), and health never waits for Blink nor fails with it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from flask.testing import FlaskClient

from blinksim.control import SimControl
from service import create_app
from service.config import Config


@contextmanager
def health_client(config: Config) -> Iterator[FlaskClient]:
    app = create_app(config)
    try:
        yield app.test_client()
    finally:
        app.extensions["blinkpos"].close()


def settled_pos_key(client: FlaskClient, seconds: float = 15) -> dict:
    deadline = time.monotonic() + seconds
    while True:
        response = client.get("/api/health")
        report = response.get_json()["checks"]["blinkConfig"]
        if report["posKey"] != "unchecked" or time.monotonic() > deadline:
            assert response.status_code == 200 and response.get_json()["status"] == "healthy"
            return report
        time.sleep(0.1)


def test_a_pos_key_blink_accepts_is_reported_valid(clean_db, clean_redis, sim_clean, sale_config) -> None:
    with health_client(sale_config()) as client:
        report = settled_pos_key(client)
    assert report["posKey"] == "valid" and report["status"] == "configured"
    assert report["posKeyCheckedAt"].endswith("Z")


def test_a_pos_key_blink_refuses_is_reported_without_failing_health(
    clean_db, clean_redis, sim_clean, sale_config
) -> None:
    refused_key = "blink_" + "Q" * 48
    with health_client(sale_config(blinkpos_api_key=refused_key)) as client:
        report = settled_pos_key(client)
        text = client.get("/api/health").get_data(as_text=True)
    assert report["posKey"] == "refused"
    assert refused_key not in text


def test_a_pos_key_that_does_not_own_the_pos_wallet_is_reported(
    clean_db, clean_redis, sim_clean: SimControl, sale_config
) -> None:
    other = sim_clean.create_account(balance=0)
    with health_client(sale_config(blinkpos_btc_wallet_id=other["btcWalletId"])) as client:
        assert settled_pos_key(client)["posKey"] == "wallet_not_owned"


def test_blink_unreachable_leaves_health_healthy(
    clean_db, clean_redis, make_config: Callable[..., Config]
) -> None:
    with health_client(make_config()) as client:  # BLINK_API_URL points where nothing answers
        assert settled_pos_key(client)["posKey"] == "unreachable"


def test_health_never_waits_for_a_slow_blink(
    clean_db, clean_redis, sim_clean: SimControl, sale_config
) -> None:
    sim_clean.fault("me", "delay", delay_ms=1500)
    with health_client(sale_config(blink_read_timeout_seconds=5.0)) as client:
        started = time.monotonic()
        response = client.get("/api/health")
        assert time.monotonic() - started < 1.0
        assert response.get_json()["checks"]["blinkConfig"]["posKey"] == "unchecked"
        assert settled_pos_key(client)["posKey"] == "valid"


@pytest.mark.parametrize("answer", ["valid", "refused"])
def test_the_answer_is_cached_and_rechecked_only_when_stale(
    sim_clean: SimControl, pos_account: dict, answer: str
) -> None:
    from service.blink.key_check import PosKeyCheck

    calls: list[str] = []
    blink = counting_client(sim_clean, calls)
    key = pos_account["apiKey"] if answer == "valid" else "blink_" + "Q" * 48
    now = [0.0]
    check = PosKeyCheck(blink, key, pos_account["btcWalletId"], recheck_seconds=60, clock=lambda: now[0])
    try:
        check.start()
        wait_for(lambda: check.answer().status != "unchecked")
        for _ in range(5):
            assert check.answer().status == answer
        assert len(calls) == 1
        now[0] = 61.0  # the answer is stale: the next look starts one background re-check
        check.answer()
        wait_for(lambda: len(calls) == 2)
        time.sleep(0.2)
        assert len(calls) == 2
    finally:
        blink.close()


def counting_client(sim: SimControl, calls: list[str]):
    """A Blink client on the simulator that notes each operation it sends in `calls`."""
    from service.blink import BlinkClient

    return BlinkClient(
        sim.graphql_url,
        connect_timeout=2,
        read_timeout=5,
        observer=lambda operation, _seconds, _outcome: calls.append(operation),
    )


def wait_for(condition: Callable[[], bool], seconds: float = 5) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_closing_waits_for_a_check_under_way_and_starts_none_after(
    sim_clean: SimControl, pos_account: dict
) -> None:
    """A check still asking Blink when the app closes would log into a closed app (or process)."""
    from service.blink.key_check import PosKeyCheck

    sim_clean.fault("me", "delay", delay_ms=800)
    calls: list[str] = []
    blink = counting_client(sim_clean, calls)
    check = PosKeyCheck(blink, pos_account["apiKey"], pos_account["btcWalletId"], recheck_seconds=0)
    try:
        check.start()
        time.sleep(0.1)  # the check is waiting on Blink's delayed answer
        check.close()
        assert calls == ["Wallets"] and check.answer().status == "valid"  # close waited for it
        time.sleep(0.2)
        assert calls == ["Wallets"]  # the stale answer started no check after close
        assert not [thread for thread in threading.enumerate() if thread.name == "pos-key-check"]
    finally:
        blink.close()
