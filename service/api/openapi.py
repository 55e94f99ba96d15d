"""The OpenAPI 3 document of the HTTP API, generated from the marshmallow schemas (apispec).

`GET /api/openapi.json` serves it. It is built on the first request and kept in the app's
extensions: building walks every schema, which no request should pay for twice, and nothing is
built at import. Every route of the app is described (tests/test_openapi.py enumerates the url
map and fails on any route missing), with its body, parameters, the 200 answer and every error
status the route can produce, all errors in the `{"error", "code", "details"}` shape.

Two sources of operations: the table below (the POS, webhook and operational routes), and
apispec-style YAML after `---` in a view's docstring (the report routes), which names its
schemas as registered here.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from apispec.yaml_utils import load_operations_from_docstring
from flask import Blueprint, Flask, Response, current_app, jsonify

from service.api import report_schemas, response_schemas, schemas

openapi_blueprint = Blueprint("openapi", __name__)

OPENAPI_VERSION = "3.0.3"
OPENAPI_PATH = "/api/openapi.json"
_EXTENSION_KEY = "blinkpos_openapi"
_build_lock = threading.Lock()

JSON = "application/json"
PAYMENT_HASH_PATTERN = r"^\s*[0-9a-fA-F]{64}\s*$"
# Methods Flask answers on its own for every route; they are not operations of ours.
IMPLICIT_METHODS = frozenset({"HEAD", "OPTIONS"})

# What each error status means on this API; an operation may name its own codes instead.
ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "The request broke a rule: `code` says which (e.g. invalid_json, invalid_amount); "
    "`details.fields` lists every field's messages",
    401: "invalid_signature: the webhook signature is missing, wrong or too old",
    403: "merchant_mismatch: the key or wallet is not the one that created the invoice",
    404: "split_not_found: no invoice with this payment hash was created here",
    409: "invoice_not_paid, or forwarding_in_progress (another call holds the claim)",
    413: "payload_too_large: the body is over 64 KiB",
    415: "unsupported_media_type: send Content-Type application/json",
    429: "rate_limited: too many invoices; retry after `Retry-After` seconds",
    500: "internal_error: an unexpected failure (logged on the server, never detailed here)",
    502: "Blink rejected the request or could not be reached (`details.retryable`)",
    503: "database_unavailable: Postgres is down; retry after `Retry-After` seconds",
    504: "Blink timed out (`details.retryable`: the same call may be repeated safely)",
}
# Every route can fail unexpectedly; every route that reads a JSON body can get these.
COMMON_ERRORS = (500,)
JSON_BODY_ERRORS = (400, 413, 415)
# Docstring-described routes all read the database: they may answer these too.
DOCSTRING_ROUTE_ERRORS = (500, 503)


def werkzeug_rule_to_openapi_path(rule: str) -> str:
    """A Flask rule as an OpenAPI path: `/a/<hash>` or `/a/<string:hash>` -> `/a/{hash}`."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


@openapi_blueprint.get(OPENAPI_PATH)
def openapi_document() -> Response:
    return jsonify(document_for(current_app))


def document_for(app: Flask) -> dict[str, Any]:
    """The app's document as a dict, built once per app on first use."""
    document = app.extensions.get(_EXTENSION_KEY)
    if document is None:
        with _build_lock:
            document = app.extensions.get(_EXTENSION_KEY)
            if document is None:
                document = build_document(app)
                app.extensions[_EXTENSION_KEY] = document
    return document


def build_document(app: Flask) -> dict[str, Any]:
    """The whole document as the JSON-ready dict that is served."""
    from service.context import EXTENSION_KEY

    max_invoice_sats = app.extensions[EXTENSION_KEY].config.max_invoice_sats
    document = build_spec(app, max_invoice_sats=max_invoice_sats).to_dict()
    _add_rules_apispec_cannot_see(document, max_invoice_sats)
    return document


def build_spec(app: Flask, *, max_invoice_sats: int) -> APISpec:
    """Component schemas, the table's operations, then those written in view docstrings."""
    from service import __version__

    spec = APISpec(
        title="BlinkPOS payment service",
        version=__version__,
        openapi_version=OPENAPI_VERSION,
        plugins=[MarshmallowPlugin()],
        info={
            "description": "Payment backend of the BlinkPOS point of sale: Lightning invoices with "
            "tips, forwarded exactly once to the merchant and the tip recipients.",
        },
    )
    _register_components(spec, max_invoice_sats)
    for path, operations in _paths().items():
        spec.path(path=path, operations=operations)
    for path, operations in _docstring_operations(app).items():
        spec.path(path=path, operations=operations)
    return spec


def _register_components(spec: APISpec, max_invoice_sats: int) -> None:
    components = spec.components
    components.schema("Error", schema=schemas.ErrorResponseSchema)
    components.schema(
        "CreateInvoiceRequest", schema=schemas.CreateInvoiceSchema(max_invoice_sats=max_invoice_sats)
    )
    components.schema("ForwardWithTipsRequest", schema=schemas.ForwardWithTipsSchema)
    components.schema("ForwardPaymentRequest", schema=schemas.ForwardPaymentSchema)
    components.schema("CreateInvoiceResponse", schema=schemas.CreateInvoiceResponseSchema)
    components.schema("ForwardResponse", schema=schemas.ForwardResponseSchema)
    components.schema("PaymentStatus", schema=schemas.PaymentStatusSchema)
    components.schema("Liveness", schema=response_schemas.LivenessSchema)
    components.schema("Readiness", schema=response_schemas.ReadinessSchema)
    components.schema("Health", schema=response_schemas.HealthSchema)
    components.schema("BlinkWebhook", schema=response_schemas.BlinkWebhookSchema)
    components.schema("WebhookResult", schema=response_schemas.WebhookResultSchema)
    for name, schema in report_schemas.REPORT_SCHEMAS.items():
        components.schema(name, schema=schema)


def _add_rules_apispec_cannot_see(document: dict[str, Any], max_invoice_sats: int) -> None:
    """Rules written as functions or field code in schemas.py, which apispec cannot translate."""
    component = document["components"]["schemas"]
    component["CreateInvoiceRequest"]["properties"]["amount"]["maximum"] = max_invoice_sats
    for request in ("ForwardWithTipsRequest", "ForwardPaymentRequest"):
        component[request]["properties"]["paymentHash"]["pattern"] = PAYMENT_HASH_PATTERN


def _docstring_operations(app: Flask) -> dict[str, dict[str, Any]]:
    """OpenAPI path -> operations found in the YAML of the app's view docstrings."""
    paths: dict[str, dict[str, Any]] = {}
    for rule in app.url_map.iter_rules():
        view = app.view_functions.get(rule.endpoint)
        operations = load_operations_from_docstring(view.__doc__ or "") if view else {}
        for method, operation in operations.items():
            if method.upper() not in (rule.methods or ()):
                continue
            path = werkzeug_rule_to_openapi_path(rule.rule)
            paths.setdefault(path, {})[method] = _with_common_errors(operation)
    return paths


def _with_common_errors(operation: dict[str, Any]) -> dict[str, Any]:
    """Status keys as strings (YAML reads `200:` as an int) and the errors every data route has."""
    responses = {str(status): answer for status, answer in operation.get("responses", {}).items()}
    for status, answer in error_responses(*DOCSTRING_ROUTE_ERRORS).items():
        responses.setdefault(status, answer)
    return {**operation, "responses": responses}


# --- building blocks of an operation --------------------------------------------------------------


def json_response(description: str, schema: str | dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def error_responses(*statuses: int, **descriptions: str) -> dict[str, Any]:
    """Error answers, all in the Error shape; `descriptions` ("e409"=...) override the defaults."""
    answers: dict[str, Any] = {}
    for status in sorted({*statuses, *COMMON_ERRORS}):
        description = descriptions.get(f"e{status}", ERROR_DESCRIPTIONS[status])
        answer = json_response(description, "Error")
        if status in (429, 503) and f"e{status}" not in descriptions:
            answer["headers"] = {"Retry-After": {"description": "seconds", "schema": {"type": "integer"}}}
        answers[str(status)] = answer
    return answers


def json_body(schema: str) -> dict[str, Any]:
    return {"required": True, "content": {JSON: {"schema": schema}}}


def path_parameter(name: str, description: str, **schema: Any) -> dict[str, Any]:
    return {
        "in": "path",
        "name": name,
        "required": True,
        "description": description,
        "schema": {"type": "string", **schema},
    }


def header_parameter(name: str, description: str) -> dict[str, Any]:
    return {
        "in": "header",
        "name": name,
        "required": True,
        "description": description,
        "schema": {"type": "string"},
    }


# --- the routes -----------------------------------------------------------------------------------


def _paths() -> dict[str, dict[str, Any]]:
    """OpenAPI path -> {method: operation}; keys follow the Flask rules (werkzeug_rule_to_openapi_path)."""
    paths: dict[str, dict[str, Any]] = {}
    for group in (_pos_paths(), _webhook_paths(), _operational_paths()):
        for path, operations in group.items():
            paths.setdefault(path, {}).update(operations)
    return paths


def _pos_paths() -> dict[str, dict[str, Any]]:
    return {
        "/api/blink/create-invoice": {
            "post": {
                "operationId": "createInvoice",
                "tags": ["pos"],
                "summary": "Issue a Lightning invoice for a sale, with its base and tip split planned",
                "description": "The invoice is issued on the POS wallet. Base = baseAmount (or amount - "
                "tipAmount); tip = amount - base; a tipAmount more than 1 sat off is refused. The API "
                "key is stored encrypted and never echoed.",
                "requestBody": json_body("CreateInvoiceRequest"),
                "responses": {
                    "200": json_response("The invoice", "CreateInvoiceResponse"),
                    **error_responses(
                        *JSON_BODY_ERRORS,
                        429,
                        502,
                        503,
                        504,
                        e400="The body broke a rule (`code`: amount_required, invalid_amount, "
                        "amount_too_large, api_key_required, wallet_id_required, tip_amount_mismatch, "
                        "tip_recipient_required, invalid_username, invalid_tip_recipients, "
                        "unknown_tip_recipient, invalid_merchant_api_key, merchant_wallet_mismatch, ...)",
                    ),
                },
            }
        },
        "/api/blink/forward-with-tips": {
            "post": {
                "operationId": "forwardWithTips",
                "tags": ["pos"],
                "summary": "Forward a paid invoice's base to the merchant and its tips, exactly once",
                "description": "Amounts come from the stored invoice, never from the request. A repeat "
                "call after completion answers 200 with alreadyProcessed: true.",
                "requestBody": json_body("ForwardWithTipsRequest"),
                "responses": {
                    "200": json_response("Forwarded (or already forwarded)", "ForwardResponse"),
                    **error_responses(*JSON_BODY_ERRORS, 404, 409, 502, 503, 504),
                },
            }
        },
        "/api/blink/forward-payment": {
            "post": {
                "operationId": "forwardPayment",
                "tags": ["pos"],
                "summary": "The POS page's fallback forward: the same exactly-once forwarding, "
                "checked against the merchant that created the invoice",
                "requestBody": json_body("ForwardPaymentRequest"),
                "responses": {
                    "200": json_response("Forwarded (or already forwarded)", "ForwardResponse"),
                    **error_responses(
                        *JSON_BODY_ERRORS,
                        403,
                        404,
                        409,
                        502,
                        503,
                        504,
                        e400="The body broke a rule (`code`: payment_hash_required, "
                        "invalid_payment_hash, api_key_required, wallet_id_required, ...)",
                    ),
                },
            }
        },
        "/api/payment-status/{payment_hash}": {
            "get": {
                "operationId": "paymentStatus",
                "tags": ["pos"],
                "summary": "A sale's state, amounts, timestamps and legs (no secrets)",
                "parameters": [
                    path_parameter(
                        "payment_hash", "the invoice's payment hash", pattern=PAYMENT_HASH_PATTERN
                    )
                ],
                "responses": {
                    "200": json_response("The sale", "PaymentStatus"),
                    **error_responses(
                        400, 404, 503, e400="invalid_payment_hash: not 64 hexadecimal characters"
                    ),
                },
            }
        },
    }


def _webhook_paths() -> dict[str, dict[str, Any]]:
    return {
        "/api/blink/webhook": {
            "post": {
                "operationId": "blinkWebhook",
                "tags": ["webhooks"],
                "summary": "Blink's Svix-signed payment notification: marks the sale paid",
                "description": "The worker forwards, so the answer is fast. Verified over the raw "
                "body (HMAC-SHA256, 5-minute tolerance). A redelivery (same svix-id) is answered 200 "
                "and ignored.",
                "parameters": [
                    header_parameter("svix-id", "the delivery id (the same on every redelivery)"),
                    header_parameter("svix-timestamp", "Unix seconds"),
                    header_parameter("svix-signature", "space-separated `v1,<base64>` signatures"),
                ],
                "requestBody": json_body("BlinkWebhook"),
                "responses": {
                    "200": json_response("Processed or deliberately ignored", "WebhookResult"),
                    **error_responses(
                        401,
                        413,
                        503,
                        e503="webhook_not_configured (no BLINK_WEBHOOK_SECRET), or database_unavailable",
                    ),
                },
            }
        },
    }


def _operational_paths() -> dict[str, dict[str, Any]]:
    return {
        "/livez": {
            "get": {
                "operationId": "livez",
                "tags": ["operations"],
                "summary": "Liveness: the process answers; touches no dependency",
                "responses": {"200": json_response("Alive", "Liveness"), **error_responses()},
            }
        },
        "/readyz": {
            "get": {
                "operationId": "readyz",
                "tags": ["operations"],
                "summary": "Readiness for a load balancer: Postgres reachable and its schema current",
                "responses": {
                    "200": json_response("Ready", "Readiness"),
                    "503": json_response("Not ready (`reason` says why)", "Readiness"),
                    **error_responses(),
                },
            }
        },
        "/api/health": {
            "get": {
                "operationId": "health",
                "tags": ["operations"],
                "summary": "Dependencies: healthy, degraded (Redis down), unhealthy (Postgres down)",
                "responses": {
                    "200": json_response("Healthy or degraded", "Health"),
                    "503": json_response("Unhealthy", "Health"),
                    **error_responses(),
                },
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "tags": ["operations"],
                "summary": "Prometheus metrics (text exposition format)",
                "responses": {
                    "200": {
                        "description": "Prometheus text format",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    **error_responses(),
                },
            }
        },
        OPENAPI_PATH: {
            "get": {
                "operationId": "openapiDocument",
                "tags": ["operations"],
                "summary": "This document",
                "responses": {
                    "200": json_response("The OpenAPI 3 document", {"type": "object"}),
                    **error_responses(),
                },
            }
        },
    }
