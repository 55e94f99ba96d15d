"""The OpenAPI document: valid OpenAPI 3, served once per app, and describing every route."""

from __future__ import annotations

import re
from typing import Any

import pytest
import schemathesis
from apispec_webframeworks.flask import FlaskPlugin
from flask import Flask, jsonify

from service.api.openapi import IMPLICIT_METHODS, OPENAPI_PATH, build_document, document_for
from service.reports.report_csv import PAYOUT_COLUMNS, SALE_COLUMNS

werkzeug_rule_to_openapi_path = FlaskPlugin.flaskpath2openapi

# Routes whose non-2xx answers are not the Error shape, by design (a load balancer reads them).
OWN_SHAPE_ANSWERS = {("/readyz", "get", "503"), ("/api/health", "get", "503")}


def undescribed_routes(app: Flask, document: dict[str, Any]) -> list[str]:
    """Every `METHOD rule` of the app (but static files) that the document does not describe."""
    missing = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        described = document["paths"].get(werkzeug_rule_to_openapi_path(rule.rule), {})
        for method in sorted((rule.methods or set()) - IMPLICIT_METHODS):
            if method.lower() not in described:
                missing.append(f"{method} {rule.rule}")
    return missing


def operations(document: dict[str, Any]):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def test_every_route_of_the_app_is_described(app: Flask) -> None:
    document = build_document(app)
    assert undescribed_routes(app, document) == []


def test_a_route_added_without_description_is_reported(app: Flask) -> None:
    app.add_url_rule("/api/not-described/<thing>", "not_described", lambda thing: jsonify({}))
    assert undescribed_routes(app, build_document(app)) == ["GET /api/not-described/<thing>"]


def test_document_is_valid_openapi_3(app: Flask) -> None:
    document = build_document(app)
    assert document["openapi"].startswith("3.")
    schemathesis.openapi.from_dict(document).validate()  # raises on any structural error


def test_served_at_api_openapi_json_and_built_once_per_app(client) -> None:
    first = client.get(OPENAPI_PATH)
    second = client.get(OPENAPI_PATH)
    assert first.status_code == 200
    assert first.mimetype == "application/json"
    assert first.get_json() == second.get_json()
    assert first.get_json()["info"]["title"] == "BlinkPOS payment service"
    assert document_for(client.application) is document_for(client.application)


def test_every_operation_documents_the_error_shape_for_500_and_every_error_status(app: Flask) -> None:
    error_ref = "#/components/schemas/Error"
    for path, method, operation in operations(build_document(app)):
        responses = operation["responses"]
        # 201, 202 and 204 where the contract says so (split profiles, payout retry), else 200.
        assert {"200", "201", "202", "204"} & set(responses), f"{method} {path}"
        assert "500" in responses, f"{method} {path}"
        for status, answer in responses.items():
            if int(status) < 400 or (path, method, status) in OWN_SHAPE_ANSWERS:
                continue
            schema = answer["content"]["application/json"]["schema"]
            assert schema == {"$ref": error_ref}, f"{method} {path} {status}"
    assert set(build_document(app)["components"]["schemas"]["Error"]["required"]) == {
        "error",
        "code",
        "details",
    }


def test_pos_operations_describe_their_bodies_statuses_and_parameters(app: Flask) -> None:
    paths = build_document(app)["paths"]
    create = paths["/api/blink/create-invoice"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CreateInvoiceRequest"
    }
    assert {"400", "413", "415", "429", "502", "503", "504"} <= set(create["responses"])
    assert {"403", "404", "409"} <= set(paths["/api/blink/forward-payment"]["post"]["responses"])
    assert {"404", "409"} <= set(paths["/api/blink/forward-with-tips"]["post"]["responses"])
    status = paths["/api/payment-status/{payment_hash}"]["get"]
    assert [(p["in"], p["name"], p["required"]) for p in status["parameters"]] == [
        ("path", "payment_hash", True),
        ("header", "X-API-KEY", False),
    ]
    webhook = paths["/api/blink/webhook"]["post"]
    assert {p["name"] for p in webhook["parameters"]} == {"svix-id", "svix-timestamp", "svix-signature"}
    assert "401" in webhook["responses"]


def test_request_schemas_carry_the_configured_limit_and_the_field_names_clients_send(
    make_config, clean_db, clean_redis
) -> None:
    from service import create_app

    app = create_app(make_config(max_invoice_sats=4321))
    try:
        schemas = build_document(app)["components"]["schemas"]
    finally:
        app.extensions["blinkpos"].close()
    create = schemas["CreateInvoiceRequest"]
    assert create["properties"]["amount"] == {"type": "integer", "minimum": 1, "maximum": 4321}
    # apiKey + userWalletId, or merchantLightningAddress instead: neither is required alone.
    assert set(create["required"]) == {"amount"}
    assert {
        "apiKey",
        "merchantLightningAddress",
        "userWalletId",
        "walletId",
        "tipRecipients",
        "baseAmount",
        "tipAmount",
    } <= set(create["properties"])
    assert set(schemas["ForwardPaymentRequest"]["required"]) == {"paymentHash", "userApiKey", "userWalletId"}


def test_report_routes_take_their_operations_from_the_view_docstrings(app: Flask) -> None:
    paths = build_document(app)["paths"]
    summary = paths["/api/reports/summary"]["get"]
    assert summary["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ReportSummary"
    }
    assert {"400", "401", "500", "503"} <= set(summary["responses"])
    assert "/api/stats/recipients/{username}" in paths


def test_werkzeug_rules_become_openapi_paths() -> None:
    assert werkzeug_rule_to_openapi_path("/api/payment-status/<payment_hash>") == (
        "/api/payment-status/{payment_hash}"
    )
    assert werkzeug_rule_to_openapi_path("/a/<string:x>/b/<int:y>") == "/a/{x}/b/{y}"
    assert werkzeug_rule_to_openapi_path("/livez") == "/livez"


def test_every_operation_taking_a_merchant_key_documents_the_failed_key_throttle(app: Flask) -> None:
    # Too many wrong keys from one address make every key-authenticated endpoint answer 429
    # (tests/test_probing_holes.py); a client reading the document must expect it.
    keyed = {
        f"{method} {path}": operation["responses"]
        for path, method, operation in operations(build_document(app))
        if any(p["in"] == "header" and p["name"] == "X-API-KEY" for p in operation.get("parameters", []))
    }
    assert "get /api/reports/summary" in keyed
    assert [name for name, responses in keyed.items() if "429" not in responses] == []
    assert "too_many_failed_attempts" in keyed["get /api/reports/tips"]["429"]["description"]


@pytest.mark.parametrize(
    ("path", "columns"),
    [("/api/reports/sales.csv", SALE_COLUMNS), ("/api/reports/payouts.csv", PAYOUT_COLUMNS)],
)
def test_csv_reports_name_every_column_in_order(app: Flask, path: str, columns: tuple[str, ...]) -> None:
    description = build_document(app)["paths"][path]["get"]["responses"]["200"]["description"]
    named = re.findall(r"[a-z_]+", description.split(":", 1)[1])
    assert [name for name in named if name in columns] == list(columns)
