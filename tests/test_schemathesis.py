"""The running app against its own OpenAPI document.

Schemathesis generates requests for every operation of `GET /api/openapi.json` (valid and
invalid ones) and sends them over real HTTP to the app served against the Blink simulator: no
answer may be a 5xx, and every answer must be a documented status with the documented content
type and schema. Random payment hashes never hit a real sale, so a second test walks whole sales
through the endpoints and checks each real answer (200s, 403, 409, alreadyProcessed) the same way.
"""

from __future__ import annotations

import base64
import time

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from blinksim.control import SimControl
from service.store import keys
from tests.fixtures.payments import LiveServer, sale_body

pytestmark = pytest.mark.timeout(120)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# Per operation and mode (valid / invalid data): the whole run stays well under a minute on 2 cores.
EXAMPLES_PER_OPERATION = 50
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"schemathesis-webhook-secret-0001").decode()
HTTP_TIMEOUT_SECONDS = 10


@pytest.fixture
def sale_app(clean_db, clean_redis, sim_clean, sale_config):
    """The sale app with webhooks on, so the webhook route answers 401 rather than 503."""
    from service import create_app

    flask_app = create_app(sale_config(blink_webhook_secret=WEBHOOK_SECRET))
    yield flask_app
    flask_app.extensions["blinkpos"].close()


def takes_input(operation) -> bool:
    inputs = (operation.path_parameters, operation.query, operation.headers, operation.cookies)
    return bool(operation.body) or any(len(group) for group in inputs)


def fuzz(operation, mode: GenerationMode) -> None:
    """Send EXAMPLES_PER_OPERATION generated requests of one kind to one operation; checks raise."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    def send(case) -> None:
        case.call_and_validate(checks=CHECKS, timeout=HTTP_TIMEOUT_SECONDS)

    send()


# schemathesis' own pytest integration (schemathesis.pytest.from_fixture) fails under pytest 9.2
# (it reads a removed private node attribute), so the operations are driven here, one subtest each.
def test_every_generated_request_gets_a_documented_answer_and_no_server_error(
    live_server: LiveServer, subtests: pytest.Subtests
) -> None:
    schema = schemathesis.openapi.from_url(
        f"{live_server.url}/api/openapi.json", timeout=HTTP_TIMEOUT_SECONDS
    )
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    for operation in operations:
        modes = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE] if takes_input(operation) else [
            GenerationMode.POSITIVE  # nothing to make invalid
        ]
        for mode in modes:
            with subtests.test(msg=f"{mode} {operation.label}"):
                try:
                    fuzz(operation, mode)
                except Unsatisfiable:
                    # e.g. a free-form string path parameter: every value is valid, none can be made invalid
                    if mode is GenerationMode.POSITIVE:
                        raise
                    pytest.skip("no invalid request can be generated for this operation")


def test_answers_of_whole_sales_match_the_document(live_server: LiveServer, sim: SimControl) -> None:
    document = schemathesis.openapi.from_url(
        f"{live_server.url}/api/openapi.json", timeout=HTTP_TIMEOUT_SECONDS
    )
    merchant = sim.create_account(balance=0)
    tipee = sim.create_account(balance=0)
    http = requests.Session()

    def call(method: str, template: str, path: str, expected_status: int, **kwargs) -> dict:
        response = http.request(method, live_server.url + path, timeout=HTTP_TIMEOUT_SECONDS, **kwargs)
        assert response.status_code == expected_status, response.text
        document[template][method].validate_response(response)
        return response.json() if response.headers.get("Content-Type") == "application/json" else {}

    tipped = call(
        "POST",
        "/api/blink/create-invoice",
        "/api/blink/create-invoice",
        200,
        json=sale_body(merchant, 1000, tip=100, recipients=[tipee]),
    )["invoice"]
    plain = call(
        "POST", "/api/blink/create-invoice", "/api/blink/create-invoice", 200, json=sale_body(merchant, 500)
    )["invoice"]
    status_path = "/api/payment-status/{payment_hash}"
    forward = "/api/blink/forward-with-tips"
    call("POST", forward, forward, 409, json={"paymentHash": tipped["paymentHash"]})
    time.sleep(keys.SHARED_ANSWER_TTL_MS / 1000)  # callers share Blink's "not paid" for this long
    call("GET", status_path, f"/api/payment-status/{tipped['paymentHash']}", 200)
    for invoice in (tipped, plain):
        sim.pay(invoice["paymentHash"])
        first = call("POST", forward, forward, 200, json={"paymentHash": invoice["paymentHash"]})
        again = call("POST", forward, forward, 200, json={"paymentHash": invoice["paymentHash"]})
        assert (first["details"]["alreadyProcessed"], again["details"]["alreadyProcessed"]) == (False, True)
        assert call("GET", status_path, f"/api/payment-status/{invoice['paymentHash']}", 200)[
            "status"
        ] == "completed"
    fallback = "/api/blink/forward-payment"
    owner = {"paymentHash": plain["paymentHash"], "userWalletId": merchant["btcWalletId"]}
    call("POST", fallback, fallback, 200, json={**owner, "userApiKey": merchant["apiKey"]})
    call("POST", fallback, fallback, 403, json={**owner, "userApiKey": "someone-elses-key"})
    call("POST", "/api/blink/webhook", "/api/blink/webhook", 401, data=b"{}", headers={"svix-id": "x"})
    own = {"X-API-KEY": merchant["apiKey"]}
    profiles, profile_path = "/api/split-profiles", "/api/split-profiles/{profile_id}"
    body = {"name": "Floor", "recipients": [{"username": tipee["username"], "share": 2}]}
    profile = call("POST", profiles, profiles, 201, json=body, headers=own)
    call("GET", profiles, profiles, 200, headers=own)
    call("PUT", profile_path, f"{profiles}/{profile['id']}", 200, json={**body, "name": "Bar"}, headers=own)
    by_profile = sale_body(merchant, 1000, tip=100, splitProfileId=profile["id"])
    call("POST", "/api/blink/create-invoice", "/api/blink/create-invoice", 200, json=by_profile)
    call("DELETE", profile_path, f"{profiles}/{profile['id']}", 204, headers=own)
    call("DELETE", profile_path, f"{profiles}/{profile['id']}", 404, headers=own)
    payouts = "/api/reports/payouts"
    assert call("GET", payouts, payouts, 200, headers=own)["payouts"]
    call("GET", f"{payouts}.csv", f"{payouts}.csv", 200, headers=own)
    retry = "/api/payouts/{payment_hash}/retry"
    call("POST", retry, f"/api/payouts/{plain['paymentHash']}/retry", 409, headers=own)
    call("POST", retry, f"/api/payouts/{'0' * 64}/retry", 404, headers=own)
    for operational in ("/livez", "/readyz", "/api/health"):
        call("GET", operational, operational, 200)
