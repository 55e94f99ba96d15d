"""create_app: nothing opens at import, apps are independent, errors are JSON without internals."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask, abort, request
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from service import MAX_REQUEST_BYTES, create_app
from service.config import Config
from service.errors import Conflict, NotFound, TooManyRequests
from service.logging import REDACTED, JsonFormatter, redact
from service.store.errors import StoreUnavailable

REPO_ROOT = Path(__file__).resolve().parents[1]
LEAKY_KEY = "blink_AbCdEfGhIjKlMnOpQrStUvWxYz012345"

IMPORT_EVERYTHING = """
import importlib, pkgutil, sys, threading
import psycopg, psycopg_pool, redis

def refuse(*args, **kwargs):
    raise SystemExit("a connection was opened at import time")

psycopg.Connection.connect = classmethod(refuse)
psycopg_pool.ConnectionPool.__init__ = refuse
redis.Redis.__init__ = refuse

import service
for module in pkgutil.walk_packages(service.__path__, "service."):
    if not module.name.endswith("__main__"):
        importlib.import_module(module.name)
assert threading.active_count() == 1, threading.enumerate()
print("imported", len([m for m in sys.modules if m.startswith("service")]))
"""


def test_importing_every_service_module_opens_no_connection_and_starts_no_thread() -> None:
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_EVERYTHING],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("imported")


def test_create_app_twice_gives_independent_working_apps(
    clean_db: str, clean_redis: str, make_config: Callable[..., Config]
) -> None:
    first, second = create_app(make_config()), create_app(make_config())
    try:
        assert first.extensions["blinkpos"] is not second.extensions["blinkpos"]
        first.extensions["blinkpos"].close()
        response = second.test_client().get("/api/health")
        assert response.status_code == 200
        assert response.get_json()["status"] == "healthy"
    finally:
        first.extensions["blinkpos"].close()
        second.extensions["blinkpos"].close()


def test_request_body_limit_is_64_kib(app: Flask) -> None:
    assert app.config["MAX_CONTENT_LENGTH"] == MAX_REQUEST_BYTES == 64 * 1024


def add_test_routes(app: Flask) -> None:
    @app.post("/test/echo")
    def echo() -> dict:
        return {"received": request.get_json()}

    @app.get("/test/boom")
    def boom() -> dict:
        raise RuntimeError(f"upstream said apiKey={LEAKY_KEY} at line 3")

    @app.get("/test/conflict")
    def conflict() -> dict:
        raise Conflict("invoice_not_paid", "The invoice is not paid yet", {"paymentHash": "ab" * 32})

    @app.get("/test/missing")
    def missing() -> dict:
        raise NotFound("split_not_found", "No such split")

    @app.get("/test/slow-down")
    def slow_down() -> dict:
        raise TooManyRequests("rate_limited", "Too many invoices", retry_after=7)

    @app.get("/test/store-down")
    def store_down() -> dict:
        raise StoreUnavailable("pool timeout for postgresql://postgres:hunter2@db/payments")

    @app.get("/test/teapot")
    def teapot() -> dict:
        abort(418)


@pytest.fixture
def routed_app(app: Flask) -> Flask:
    add_test_routes(app)
    return app


def assert_error_shape(response: TestResponse, status: int, code: str) -> dict:
    assert response.status_code == status
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error", "code", "details"}
    assert isinstance(body["error"], str) and body["error"]
    assert body["code"] == code
    assert isinstance(body["details"], dict)
    return body


def test_unknown_path_is_json_404(client: FlaskClient) -> None:
    assert_error_shape(client.get("/no/such/thing"), 404, "not_found")


def test_wrong_method_is_json_405_naming_allowed_methods(client: FlaskClient) -> None:
    response = client.post("/livez")
    body = assert_error_shape(response, 405, "method_not_allowed")
    assert "GET" in body["details"]["allowedMethods"]
    assert "GET" in response.headers["Allow"]


def test_oversized_body_is_json_413(routed_app: Flask) -> None:
    payload = json.dumps({"memo": "x" * (MAX_REQUEST_BYTES + 1)})
    response = routed_app.test_client().post("/test/echo", data=payload, content_type="application/json")
    assert_error_shape(response, 413, "payload_too_large")


def test_body_just_under_the_limit_is_accepted(routed_app: Flask) -> None:
    payload = json.dumps({"memo": "x" * (MAX_REQUEST_BYTES - 100)})
    response = routed_app.test_client().post("/test/echo", data=payload, content_type="application/json")
    assert response.status_code == 200


def test_non_json_body_is_json_415(routed_app: Flask) -> None:
    response = routed_app.test_client().post("/test/echo", data="amount=5", content_type="text/plain")
    assert_error_shape(response, 415, "unsupported_media_type")


def test_other_http_errors_get_a_snake_case_code(routed_app: Flask) -> None:
    assert_error_shape(routed_app.test_client().get("/test/teapot"), 418, "i_m_a_teapot")


def test_api_error_keeps_its_status_code_and_details(routed_app: Flask) -> None:
    client = routed_app.test_client()
    body = assert_error_shape(client.get("/test/conflict"), 409, "invoice_not_paid")
    assert body["details"] == {"paymentHash": "ab" * 32}
    assert_error_shape(client.get("/test/missing"), 404, "split_not_found")
    response = client.get("/test/slow-down")
    assert_error_shape(response, 429, "rate_limited")
    assert response.headers["Retry-After"] == "7"


def test_store_unavailable_is_503_database_unavailable_without_the_url(routed_app: Flask) -> None:
    response = routed_app.test_client().get("/test/store-down")
    assert_error_shape(response, 503, "database_unavailable")
    assert "hunter2" not in response.get_data(as_text=True)


def test_unexpected_exception_is_500_without_stack_trace_or_secret(
    routed_app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    routed_app.testing = False  # as in production: no exception propagation
    with caplog.at_level(logging.ERROR):
        response = routed_app.test_client().get("/test/boom")
    body = assert_error_shape(response, 500, "internal_error")
    text = response.get_data(as_text=True)
    assert "Traceback" not in text and "RuntimeError" not in text and LEAKY_KEY not in text
    assert body["details"] == {}
    logged = [record for record in caplog.records if record.getMessage() == "unhandled_exception"]
    assert logged and logged[0].exc_info is not None
    formatted = JsonFormatter().format(logged[0])
    assert "RuntimeError" in formatted and LEAKY_KEY not in formatted


def test_request_id_is_echoed_when_sane_and_generated_otherwise(client: FlaskClient) -> None:
    def request_id(headers: dict[str, str]) -> str:
        return client.get("/livez", headers=headers).headers["X-Request-ID"]

    assert request_id({"X-Request-ID": "pos-7f3a.1"}) == "pos-7f3a.1"
    generated = request_id({"X-Request-ID": "bad id with spaces <script>"})
    assert generated != "bad id with spaces <script>" and len(generated) == 32
    assert request_id({"X-Request-ID": "x" * 500}) != "x" * 500
    assert request_id({}) != request_id({})


def test_log_lines_are_json_with_request_id_and_redacted_keys() -> None:
    record = logging.LogRecord("service.test", logging.INFO, __file__, 1, "invoice_created", None, None)
    record.request_id = "req-1"
    record.payload = {"apiKey": "merchant-secret", "nested": [{"X-API-KEY": "pos-secret"}], "amount": 5}
    record.userApiKey = "another-secret"
    line = JsonFormatter().format(record)
    entry = json.loads(line)
    assert "\n" not in line
    assert entry["event"] == "invoice_created" and entry["level"] == "info" and entry["request_id"] == "req-1"
    assert entry["payload"] == {"apiKey": REDACTED, "nested": [{"X-API-KEY": REDACTED}], "amount": 5}
    assert entry["userApiKey"] == REDACTED
    assert {"ts", "logger"} <= set(entry)


def test_keys_inside_free_text_are_redacted() -> None:
    text = redact('body {"apiKey": "k1", "api_key":"k2"} header X-API-KEY: k3 and ' + LEAKY_KEY)
    assert all(secret not in text for secret in ("k1", "k2", "k3", LEAKY_KEY))
    assert "body" in text
