"""CORS_ALLOWED_ORIGINS takes exact origins only, refused at start otherwise, and matches exactly."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest

from service.config import Config, ConfigError

REPO_ROOT = Path(__file__).resolve().parents[1]
REQUIRED = {
    "DATABASE_URL": "postgresql://postgres@/postgres?host=/tmp",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "BLINKPOS_API_KEY": "blink_pos_key_for_cors_tests",
    "BLINKPOS_BTC_WALLET_ID": "pos-wallet",
    "API_KEY_ENCRYPTION_KEY": base64.urlsafe_b64encode(b"k" * 32).decode(),
}


@pytest.mark.parametrize(
    "value",
    [
        "https://*.example.com",
        "*",
        "https://pos.example.com/app",
        "https://pos\\.example\\.com",
        "https://pos.example.(com|net)",
        "^https://pos.example.com$",
        "https://user@pos.example.com",
        "https://pos.example.com?x=1",
        "https://pos.example.com:99999",
        "ftp://pos.example.com",
        "https://",
        "https://pos.example.com, https://*.example.net",
    ],
)
def test_anything_but_exact_origins_is_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="CORS_ALLOWED_ORIGINS") as refused:
        Config.from_env({**REQUIRED, "CORS_ALLOWED_ORIGINS": value})
    assert value not in str(refused.value)


def test_exact_origins_with_ports_and_case_are_accepted_canonically() -> None:
    config = Config.from_env(
        {**REQUIRED, "CORS_ALLOWED_ORIGINS": "https://POS.example.com, http://localhost:3000, http://127.0.0.1:8080"}
    )
    assert config.cors_allowed_origins == (
        "https://pos.example.com", "http://localhost:3000", "http://127.0.0.1:8080",
    )


def test_a_pattern_stops_the_service_at_start_with_one_line_and_exit_2() -> None:
    env = {name: value for name, value in os.environ.items() if name not in REQUIRED}
    env.update(REQUIRED, CORS_ALLOWED_ORIGINS="https://*.example.com", PYTHONPATH=str(REPO_ROOT))
    result = subprocess.run(
        [sys.executable, "-m", "service", "config", "check"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "CORS_ALLOWED_ORIGINS" in result.stderr


@pytest.mark.parametrize(
    "origin",
    [
        "https://xexample.com.evil.net",
        "https://pos.example.com.evil.net",
        "https://evilpos.example.com",
        "http://pos.example.com",
        "https://pos.example.com:444",
        "https://posXexample.com",
    ],
)
def test_only_the_exact_origin_gets_cors_headers(make_config, clean_db, clean_redis, origin: str) -> None:
    from service import create_app

    app = create_app(make_config(cors_allowed_origins=("https://pos.example.com", "https://example.com")))
    try:
        client = app.test_client()

        def allowed(requested: str) -> str | None:
            return client.options(
                "/api/blink/create-invoice",
                headers={"Origin": requested, "Access-Control-Request-Method": "POST"},
            ).headers.get("Access-Control-Allow-Origin")

        assert allowed("https://pos.example.com") == "https://pos.example.com"
        assert allowed(origin) is None
    finally:
        app.extensions["blinkpos"].close()


@pytest.mark.parametrize("origin", ["https://*.example.com", "https://pos.example.com/", "*"])
def test_init_cors_refuses_anything_that_flask_cors_would_read_as_a_pattern(origin: str) -> None:
    from flask import Flask

    from service.api.cors import init_cors

    with pytest.raises(ValueError, match="exact origin"):
        init_cors(Flask(__name__), (origin,))
