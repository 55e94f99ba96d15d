"""An app process may start before Postgres is reachable: it must boot and report not-ready."""

from __future__ import annotations

import time

from service import create_app

UNREACHABLE_POSTGRES = "postgresql://postgres@127.0.0.1:9/postgres?connect_timeout=1"


def test_app_starts_while_postgres_is_down_and_refuses_money_requests(make_config, clean_redis):
    started = time.monotonic()
    app = create_app(make_config(database_url=UNREACHABLE_POSTGRES, pg_connect_timeout_seconds=1.0))
    try:
        assert time.monotonic() - started < 3
        client = app.test_client()
        assert client.get("/livez").status_code == 200
        assert client.get("/readyz").status_code == 503
        assert client.get("/api/health").status_code == 503
        status = client.get(f"/api/payment-status/{'ab' * 32}")
        assert status.status_code == 503
        assert status.get_json()["code"] == "database_unavailable"
    finally:
        app.extensions["blinkpos"].close()
