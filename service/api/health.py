"""Liveness, readiness and the detailed health report (DESIGN §4).

- `/livez` touches nothing: the process answers, that is all.
- `/readyz` is what a load balancer asks: Postgres reachable and its schema the one this code expects.
- `/api/health` reports every dependency. Redis down only degrades the service (Postgres is the
  truth), Postgres down makes it unhealthy (503). Each check is bounded well under a second.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, jsonify
from redis.exceptions import RedisError

from service.api.fields import shared_schema
from service.api.response_schemas import HealthSchema, LivenessSchema, ReadinessSchema
from service.context import AppServices, services

health_blueprint = Blueprint("health", __name__)
log = logging.getLogger(__name__)

# Bounds for one check; the pool's own timeout and the Redis socket timeout are the inner guards.
POSTGRES_CHECK_TIMEOUT_SECONDS = 0.8


@dataclass(frozen=True)
class CheckResult:
    up: bool
    latency_ms: float
    reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def answer(self) -> dict[str, Any]:
        """What DependencyCheckSchema dumps; absent keys stay out of the answer."""
        reason = {"reason": self.reason} if self.reason else {}
        return {"status": "up" if self.up else "down", "latency_ms": self.latency_ms, **reason, **self.extra}


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def check_postgres(app_services: AppServices) -> CheckResult:
    """Reachable within the bound, and the schema version equals what this code expects."""
    from service.store.errors import StoreUnavailable

    started = time.perf_counter()
    expected = app_services.expected_schema_version
    try:
        app_services.db.ping(POSTGRES_CHECK_TIMEOUT_SECONDS)
        version = app_services.db.schema_version()
    except StoreUnavailable as exc:
        log.warning("health_postgres_down", extra={"error_type": type(exc).__name__})
        return CheckResult(False, _elapsed_ms(started), "unreachable")
    extra = {
        "schema_version": version,
        "expected_schema_version": expected,
        "pool": pool_report(app_services),
    }
    if version != expected:
        return CheckResult(False, _elapsed_ms(started), "schema_version_mismatch", extra)
    return CheckResult(True, _elapsed_ms(started), None, extra)


def check_redis(app_services: AppServices) -> CheckResult:
    started = time.perf_counter()
    try:
        app_services.redis.ping()
    except (RedisError, OSError) as exc:
        log.warning("health_redis_down", extra={"error_type": type(exc).__name__})
        return CheckResult(False, _elapsed_ms(started), "unreachable")
    return CheckResult(True, _elapsed_ms(started))


def blink_config_report(app_services: AppServices) -> dict[str, Any]:
    """Which Blink settings are present, never their values (the host only, for the API URL), and
    what Blink last answered for the POS key (cached: this never waits for Blink)."""
    config = app_services.config
    answer = app_services.pos_key_check.answer() if app_services.pos_key_check else None
    checked_at = answer.checked_at if answer else None
    checked_at_text = checked_at.isoformat(timespec="seconds").replace("+00:00", "Z") if checked_at else None
    return {
        "status": "configured" if config.blinkpos_api_key and config.blinkpos_btc_wallet_id else "missing",
        "api_host": urlsplit(config.blink_api_url).hostname,
        "pos_wallet_configured": bool(config.blinkpos_btc_wallet_id),
        "pos_api_key_configured": bool(config.blinkpos_api_key),
        "webhook_secret_configured": bool(config.blink_webhook_secret),
        "pos_key": answer.status if answer else "unchecked",
        "pos_key_checked_at": checked_at_text,
    }


def pool_report(app_services: AppServices) -> dict[str, int]:
    """The Postgres pool's size, idle connections and waiting requests (this process)."""
    stats = app_services.db.pool.get_stats()
    return {
        "size": stats.get("pool_size", 0),
        "available": stats.get("pool_available", 0),
        "max": stats.get("pool_max", 0),
        "waiting": stats.get("requests_waiting", 0),
    }


def worker_report(app_services: AppServices) -> dict[str, Any]:
    """Age of the freshest worker heartbeat (None: no worker has run); informative, not a status."""
    from service.store.errors import StoreUnavailable
    from service.worker import heartbeat_age_seconds

    try:
        return {"heartbeat_age_seconds": heartbeat_age_seconds(app_services.db)}
    except StoreUnavailable:
        return {"heartbeat_age_seconds": None}


@health_blueprint.get("/livez")
def livez() -> Response:
    """Liveness.
    ---
    get:
      operationId: livez
      tags: [operations]
      summary: "Liveness: the process answers; touches no dependency"
      responses:
        200: {description: Alive, content: {application/json: {schema: Liveness}}}
    """
    return jsonify(shared_schema(LivenessSchema).dump({"status": "alive"}))


@health_blueprint.get("/readyz")
def readyz() -> tuple[Response, int]:
    """Readiness.
    ---
    get:
      operationId: readyz
      tags: [operations]
      summary: "Readiness for a load balancer: Postgres reachable and its schema current"
      responses:
        200: {description: Ready, content: {application/json: {schema: Readiness}}}
        503: {description: Not ready (`reason` says why), content: {application/json: {schema: Readiness}}}
    """
    postgres = check_postgres(services())
    if postgres.up:
        return jsonify(shared_schema(ReadinessSchema).dump({"status": "ready"})), 200
    answer = {"status": "not_ready", "reason": f"postgres_{postgres.reason}"}
    return jsonify(shared_schema(ReadinessSchema).dump(answer)), 503


@health_blueprint.get("/api/health")
def api_health() -> tuple[Response, int]:
    """The detailed health report.
    ---
    get:
      operationId: health
      tags: [operations]
      summary: "Dependencies: healthy, degraded (Redis down), unhealthy (Postgres down)"
      responses:
        200: {description: Healthy or degraded, content: {application/json: {schema: Health}}}
        503: {description: Unhealthy, content: {application/json: {schema: Health}}}
    """
    from service import __version__

    started = time.perf_counter()
    app_services = services()
    postgres = check_postgres(app_services)
    redis = check_redis(app_services)
    if not postgres.up:
        status, http_status = "unhealthy", 503
    elif not redis.up:
        status, http_status = "degraded", 200
    else:
        status, http_status = "healthy", 200
    body = {
        "status": status,
        "timestamp": datetime.now(UTC),
        "uptime": round(app_services.uptime_seconds(), 3),
        "version": __version__,
        "response_time": _elapsed_ms(started),
        "checks": {
            "redis": redis.answer(),
            "postgres": postgres.answer(),
            "blink_config": blink_config_report(app_services),
        },
        # The background worker's liveness (informative: the API serves without it).
        "worker": worker_report(app_services) if postgres.up else {"heartbeat_age_seconds": None},
    }
    return jsonify(shared_schema(HealthSchema).dump(body)), http_status
