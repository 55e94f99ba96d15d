"""/livez, /readyz and /api/health against real servers, including stopped ones."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from service import __version__, create_app
from service.config import Config
from service.devservers import EmbeddedPostgres, EmbeddedValkey
from tests.fixtures.servers import TEST_ENCRYPTION_KEY, TEST_POS_API_KEY

# A stopped dependency must not make a health probe hang: each check is bounded under 1 s.
PROBE_DEADLINE_SECONDS = 2.0


def timed_get(client: FlaskClient, path: str) -> TestResponse:
    started = time.perf_counter()
    response = client.get(path)
    elapsed = time.perf_counter() - started
    assert elapsed < PROBE_DEADLINE_SECONDS, f"{path} took {elapsed:.2f} s"
    return response


@pytest.fixture
def app_on(make_config: Callable[..., Config]) -> Iterator[Callable[..., Flask]]:
    """Build apps on given servers; every app built is closed after the test."""
    built: list[Flask] = []

    def build(**overrides: object) -> Flask:
        app = create_app(make_config(**overrides))
        built.append(app)
        return app

    yield build
    for app in built:
        app.extensions["blinkpos"].close()


def test_livez_is_alive(client: FlaskClient) -> None:
    response = client.get("/livez")
    assert response.status_code == 200
    assert response.get_json() == {"status": "alive"}


def test_readyz_is_ready_when_postgres_is_up_and_migrated(client: FlaskClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json()["status"] == "ready"


def test_health_with_everything_up_is_healthy(client: FlaskClient) -> None:
    response = client.get("/api/health")
    assert response.status_code == 200
    body = response.get_json()
    assert list(body) == ["status", "timestamp", "uptime", "version", "responseTime", "checks", "worker"]
    assert body["status"] == "healthy"
    assert body["version"] == __version__
    assert datetime.fromisoformat(body["timestamp"].replace("Z", "+00:00")).tzinfo is not None
    assert body["uptime"] >= 0 and body["responseTime"] >= 0
    checks = body["checks"]
    assert set(checks) == {"redis", "postgres", "blinkConfig"}
    assert checks["redis"]["status"] == "up" and checks["redis"]["latencyMs"] >= 0
    assert checks["postgres"]["status"] == "up" and checks["postgres"]["latencyMs"] >= 0
    assert checks["postgres"]["schemaVersion"] == checks["postgres"]["expectedSchemaVersion"] >= 1
    assert checks["blinkConfig"]["status"] == "configured"


def test_health_reveals_no_secret(client: FlaskClient) -> None:
    text = client.get("/api/health").get_data(as_text=True)
    assert TEST_POS_API_KEY not in text
    assert TEST_ENCRYPTION_KEY not in text
    assert "postgresql://" not in text


def test_valkey_down_degrades_health_but_keeps_readiness(
    app_on: Callable[..., Flask], private_valkey: EmbeddedValkey, clean_db: str
) -> None:
    client = app_on(redis_url=private_valkey.url).test_client()
    assert client.get("/api/health").get_json()["status"] == "healthy"

    private_valkey.stop()

    health = timed_get(client, "/api/health")
    assert health.status_code == 200
    body = health.get_json()
    assert body["status"] == "degraded"
    assert body["checks"]["redis"]["status"] == "down"
    assert body["checks"]["postgres"]["status"] == "up"
    assert timed_get(client, "/readyz").status_code == 200


def test_health_recovers_when_valkey_comes_back(
    app_on: Callable[..., Flask], private_valkey: EmbeddedValkey, clean_db: str
) -> None:
    client = app_on(redis_url=private_valkey.url).test_client()
    private_valkey.stop()
    assert client.get("/api/health").get_json()["status"] == "degraded"
    private_valkey.start()
    assert client.get("/api/health").get_json()["status"] == "healthy"


def test_postgres_down_makes_readiness_and_health_fail_fast_but_liveness_holds(
    app_on: Callable[..., Flask], private_postgres: EmbeddedPostgres, clean_redis: str
) -> None:
    client = app_on(database_url=private_postgres.url).test_client()
    assert client.get("/readyz").status_code == 200

    private_postgres.stop(mode="immediate")

    ready = timed_get(client, "/readyz")
    assert ready.status_code == 503
    assert ready.get_json() == {"status": "not_ready", "reason": "postgres_unreachable"}
    health = timed_get(client, "/api/health")
    assert health.status_code == 503
    body = health.get_json()
    assert body["status"] == "unhealthy"
    assert body["checks"]["postgres"]["status"] == "down"
    assert body["checks"]["redis"]["status"] == "up"
    assert timed_get(client, "/livez").status_code == 200


def test_readiness_returns_when_postgres_comes_back(
    app_on: Callable[..., Flask], private_postgres: EmbeddedPostgres, clean_redis: str
) -> None:
    client = app_on(database_url=private_postgres.url).test_client()
    private_postgres.stop(mode="immediate")
    assert timed_get(client, "/readyz").status_code == 503
    private_postgres.start()
    deadline = time.monotonic() + 10
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, "never ready again after Postgres restarted"
        time.sleep(0.2)


def test_unmigrated_database_is_not_ready(
    app_on: Callable[..., Flask], tmp_path: Path, clean_redis: str
) -> None:
    blank = EmbeddedPostgres(tmp_path / "blank", delete_on_close=True)
    try:
        client = app_on(database_url=blank.url).test_client()
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.get_json()["reason"] == "postgres_schema_version_mismatch"
        health = client.get("/api/health").get_json()
        assert health["status"] == "unhealthy"
        assert health["checks"]["postgres"]["schemaVersion"] == 0
    finally:
        blank.close()
