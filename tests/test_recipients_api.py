"""POST /api/recipients/validate over the real app: Redis, a real LNURL server, the Blink simulator."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from flask import Flask

from service import create_app
from tests.fixtures.payments import wait_for_a_fresh_rate_window
from tests.lnurl_support import LnurlTestServer, Reply, running_server

URL = "/api/recipients/validate"


@pytest.fixture
def server() -> Iterator[LnurlTestServer]:
    with running_server() as running:
        yield running


@pytest.fixture
def app_with(clean_db, clean_redis, make_config) -> Iterator[Callable[..., Flask]]:
    apps: list[Flask] = []

    def build(**overrides) -> Flask:
        flask_app = create_app(make_config(**overrides))
        flask_app.testing = True
        apps.append(flask_app)
        return flask_app

    yield build
    for flask_app in apps:
        flask_app.extensions["blinkpos"].close()


def test_lightning_address_answers_kind_normal_form_and_range(app_with, server):
    address = server.pay_wallet("alice", min_msat=1000, max_msat=2_000_000)
    client = app_with(lnurl_insecure_hosts=(server.host_port,)).test_client()
    answer = client.post(URL, json={"recipient": "  " + address.upper()})
    assert answer.status_code == 200
    assert answer.get_json() == {
        "valid": True,
        "kind": "lightning_address",
        "normalized": address,
        "minSendableSats": 1,
        "maxSendableSats": 2000,
    }
    client.post(URL, json={"recipient": address})
    assert len(server.seen) == 1  # the second answer came from the cache


def test_a_blink_user_when_blink_does_not_answer_is_a_retryable_502(app_with):
    client = app_with().test_client()  # the test config's Blink URL: nothing listens there
    answer = client.post(URL, json={"recipient": "alice"})
    assert answer.status_code == 502
    assert answer.get_json()["code"] == "blink_unavailable"
    assert answer.get_json()["error"] == "Blink is not answering."
    assert answer.get_json()["details"] == {"retryable": True}


def test_blink_user_is_checked_at_blink(app_with, sim_clean):
    account = sim_clean.create_account()
    client = app_with(blink_api_url=sim_clean.graphql_url).test_client()
    answer = client.post(URL, json={"recipient": account["username"] + "@blink.sv"})
    assert answer.status_code == 200
    assert answer.get_json()["kind"] == "blink"
    assert answer.get_json()["minSendableSats"] is None
    unknown = client.post(URL, json={"recipient": "nobody_has_this_name"})
    assert unknown.status_code == 400 and unknown.get_json()["code"] == "recipient_invalid"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "recipient_required"),
        ({"recipient": ""}, "recipient_required"),
        ({"recipient": 5}, "recipient_required"),
        ({"recipient": "x" * 2001}, "recipient_required"),
        ({"recipient": "not an address@"}, "recipient_invalid"),
        ({"recipient": "someone@hidden.onion"}, "recipient_invalid"),
    ],
)
def test_bad_recipients_are_400_with_a_code(app_with, body, code):
    answer = app_with().test_client().post(URL, json=body)
    assert answer.status_code == 400
    payload = answer.get_json()
    assert payload["code"] == code and isinstance(payload["error"], str) and payload["error"]


def test_a_server_inside_the_network_is_refused_unless_listed(app_with, server):
    address = server.pay_wallet("inside")
    answer = app_with().test_client().post(URL, json={"recipient": address})
    assert answer.status_code == 400
    assert answer.get_json()["code"] == "recipient_unreachable"
    assert answer.get_json()["details"]["reason"] == "forbidden_address"
    assert server.seen == []


def test_error_status_from_the_wallet_is_400_with_its_reason(app_with, server):
    server.reply("/.well-known/lnurlp/gone", Reply(404, {"status": "ERROR", "reason": "no such user"}))
    client = app_with(lnurl_insecure_hosts=(server.host_port,)).test_client()
    answer = client.post(URL, json={"recipient": f"gone@{server.host_port}"})
    assert answer.status_code == 400
    assert answer.get_json()["code"] == "recipient_invalid"
    assert "no such user" in answer.get_json()["error"]


def test_a_server_answering_json_nested_too_deep_is_400_not_500(app_with, server):
    server.reply("/.well-known/lnurlp/deep", Reply(body=b"[" * 50_000))
    client = app_with(lnurl_insecure_hosts=(server.host_port,)).test_client()
    answer = client.post(URL, json={"recipient": f"deep@{server.host_port}"})
    assert answer.status_code == 400
    assert answer.get_json()["code"] == "recipient_unreachable"
    assert answer.get_json()["details"]["reason"] == "not_json"


def test_a_server_redirecting_to_a_url_that_does_not_parse_is_400_not_500(app_with, server):
    server.reply("/.well-known/lnurlp/moved", Reply(302, b"", headers={"Location": "http://[::1"}))
    client = app_with(lnurl_insecure_hosts=(server.host_port,)).test_client()
    answer = client.post(URL, json={"recipient": f"moved@{server.host_port}"})
    assert answer.status_code == 400
    assert answer.get_json()["code"] == "recipient_unreachable"
    assert answer.get_json()["details"]["reason"] == "redirect"


def test_checks_are_rate_limited_per_client_address(app_with, server):
    address = server.pay_wallet("busy")
    wait_for_a_fresh_rate_window()
    client = app_with(lnurl_insecure_hosts=(server.host_port,), rate_limit_per_ip_per_minute=2).test_client()
    statuses = [client.post(URL, json={"recipient": address}).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
