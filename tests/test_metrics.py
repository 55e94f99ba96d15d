"""GET /metrics: valid Prometheus text whose counters move with a real sale."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from blinksim.control import SimControl
from tests.fixtures.payments import sale_body
from tests.fixtures.servers import REPO_ROOT


def scrape(client: FlaskClient) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    values: dict[tuple[str, tuple], float] = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def value(values: dict, name: str, **labels: str) -> float:
    return values.get((name, tuple(sorted(labels.items()))), 0.0)


def test_counters_move_after_a_sale(
    sale_app: Flask, sale_client: FlaskClient, sim: SimControl, merchant: dict, tipee
):
    alice = tipee()
    before = scrape(sale_client)
    created = sale_client.post("/api/blink/create-invoice", json=sale_body(merchant, 1100, 100, [alice]))
    payment_hash = created.get_json()["invoice"]["paymentHash"]
    sim.pay(payment_hash)
    forwarded = sale_client.post("/api/blink/forward-with-tips", json={"paymentHash": payment_hash})
    assert forwarded.status_code == 200, forwarded.get_json()
    sale_client.get(f"/api/payment-status/{payment_hash}")

    after = scrape(sale_client)

    requests_total = "blinkpos_http_requests_total"
    create_labels = {"endpoint": "/api/blink/create-invoice", "method": "POST", "status": "200"}
    assert value(after, requests_total, **create_labels) - value(before, requests_total, **create_labels) == 1
    # Labelled by url rule, never by the raw path (no series per payment hash).
    status_rule = {"endpoint": "/api/payment-status/<payment_hash>", "method": "GET", "status": "200"}
    assert value(after, requests_total, **status_rule) == 1
    assert not any(payment_hash in str(labels) for (_, labels) in after)
    assert (
        value(after, "blinkpos_http_request_duration_seconds_count", endpoint="/metrics", method="GET") >= 1
    )
    assert value(after, "blinkpos_forwards_total", outcome="completed") == 1
    assert value(after, "blinkpos_forward_legs_total", outcome="paid") == 2
    blink_ok = value(
        after, "blinkpos_blink_requests_total", operation="LnInvoicePaymentSend", outcome="success"
    )
    assert blink_ok == 2
    latency = "blinkpos_blink_request_duration_seconds_count"
    assert value(after, latency, operation="LnInvoiceCreate", outcome="success") >= 1  # the sale
    # Both legs, the merchant's base too, are invoiced on their recipients' behalf.
    assert value(after, latency, operation="LnInvoiceCreateOnBehalfOfRecipient", outcome="success") >= 2
    assert value(after, "blinkpos_cache_operations_total", result="write") >= 1


def test_blink_errors_and_leg_failures_are_counted(
    sale_client: FlaskClient, sim: SimControl, merchant: dict, tipee
):
    alice = tipee()
    created = sale_client.post("/api/blink/create-invoice", json=sale_body(merchant, 1100, 100, [alice]))
    payment_hash = created.get_json()["invoice"]["paymentHash"]
    sim.pay(payment_hash)
    sim.fault("lnInvoicePaymentSend", "error", count=1, http_status=503)

    sale_client.post("/api/blink/forward-with-tips", json={"paymentHash": payment_hash})
    after = scrape(sale_client)

    assert value(after, "blinkpos_forward_legs_total", outcome="failed") == 1
    assert value(after, "blinkpos_forwards_total", outcome="incomplete") == 1
    failed_calls = sum(
        v
        for (name, labels), v in after.items()
        if name == "blinkpos_blink_requests_total" and ("outcome", "success") not in labels
    )
    assert failed_calls == 1
    assert (
        value(after, "blinkpos_blink_requests_total", operation="LnInvoicePaymentSend", outcome="unavailable")
        == 1
    )


MULTIPROCESS_WRITER = textwrap.dedent(
    """
    from service.metrics import Metrics
    metrics = Metrics()
    metrics.observe_forward("forward", "completed")
    metrics.observe_request("/api/blink/create-invoice", "POST", 200, 0.01)
    """
)
MULTIPROCESS_READER = textwrap.dedent(
    """
    import sys
    from service.metrics import Metrics
    body, _ = Metrics().exposition()
    sys.stdout.write(body.decode())
    """
)


def test_multiprocess_mode_adds_up_every_process(tmp_path: Path):
    environment = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for _ in range(2):  # two "gunicorn workers", each its own process
        subprocess.run(
            [sys.executable, "-c", MULTIPROCESS_WRITER], cwd=REPO_ROOT, env=environment, check=True
        )

    scraped = subprocess.run(
        [sys.executable, "-c", MULTIPROCESS_READER],
        cwd=REPO_ROOT,
        env=environment,
        check=True,
        capture_output=True,
        text=True,
    ).stdout

    values = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(scraped)
        for sample in family.samples
    }
    assert value(values, "blinkpos_forwards_total", outcome="completed") == 2
    requests_labels = {"endpoint": "/api/blink/create-invoice", "method": "POST", "status": "200"}
    assert value(values, "blinkpos_http_requests_total", **requests_labels) == 2
