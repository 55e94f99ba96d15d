"""Config.from_env: defaults, types, and one-line errors that name every bad variable."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest

from service.config import DEFAULT_BLINK_API_URL, VARIABLES, Config, ConfigError

REPO_ROOT = Path(__file__).resolve().parents[1]
KEY = base64.urlsafe_b64encode(b"k" * 32).decode()
REQUIRED = {
    "DATABASE_URL": "postgresql://postgres@/postgres?host=/tmp",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "BLINKPOS_API_KEY": "blink_pos_key_for_config_tests",
    "BLINKPOS_BTC_WALLET_ID": "pos-wallet",
    "API_KEY_ENCRYPTION_KEY": KEY,
}


def env(**changes: str | None) -> dict[str, str]:
    values = dict(REQUIRED)
    for name, value in changes.items():
        if value is None:
            values.pop(name, None)
        else:
            values[name] = value
    return values


def test_defaults_match_the_documented_table() -> None:
    config = Config.from_env(env())
    assert config.blink_api_url == DEFAULT_BLINK_API_URL
    assert config.redis_password is None
    assert config.blink_webhook_secret is None
    assert config.tip_ttl_seconds == 86400
    assert config.tip_store_file is None
    assert config.max_invoice_sats == 10_000_000
    assert (config.pg_pool_min_size, config.pg_pool_max_size) == (2, 10)
    assert config.pg_connect_timeout_seconds == 5
    assert config.redis_socket_timeout_seconds == 0.5
    assert (config.blink_connect_timeout_seconds, config.blink_read_timeout_seconds) == (3, 15)
    assert config.forward_lease_seconds == 300
    assert config.leg_max_attempts == 10
    assert (config.rate_limit_per_wallet_per_minute, config.rate_limit_per_ip_per_minute) == (60, 120)
    assert config.cors_allowed_origins == ()
    assert config.environment == "production"
    assert config.log_level == "INFO"
    assert config.worker_poll_seconds == 1
    assert config.pending_poll_after_seconds == 30


def test_every_variable_maps_to_a_config_field() -> None:
    fields = set(Config.__dataclass_fields__)
    assert {name.lower() for name in VARIABLES} == fields


def test_values_are_parsed_to_their_types() -> None:
    config = Config.from_env(
        env(
            TIP_TTL_SECONDS="600",
            REDIS_SOCKET_TIMEOUT_SECONDS="0.25",
            CORS_ALLOWED_ORIGINS="https://pos.example.com, http://localhost:3000/ ,",
            LOG_LEVEL="debug",
            BLINK_WEBHOOK_SECRET="whsec_" + base64.b64encode(b"secret").decode(),
            PG_POOL_MIN_SIZE="0",
        )
    )
    assert config.tip_ttl_seconds == 600
    assert config.redis_socket_timeout_seconds == 0.25
    assert config.cors_allowed_origins == ("https://pos.example.com", "http://localhost:3000")
    assert config.log_level == "DEBUG"
    assert config.blink_webhook_secret.startswith("whsec_")
    assert config.pg_pool_min_size == 0


def test_empty_optional_variable_means_its_default() -> None:
    assert Config.from_env(env(TIP_TTL_SECONDS="", BLINK_WEBHOOK_SECRET="")).tip_ttl_seconds == 86400


def test_missing_required_variables_are_all_named_in_one_line() -> None:
    with pytest.raises(ConfigError) as raised:
        Config.from_env(env(DATABASE_URL=None, BLINKPOS_API_KEY="  ", API_KEY_ENCRYPTION_KEY=None))
    message = str(raised.value)
    assert "\n" not in message
    for name in ("DATABASE_URL", "BLINKPOS_API_KEY", "API_KEY_ENCRYPTION_KEY"):
        assert name in message
    assert "REDIS_URL" not in message


def test_missing_and_invalid_variables_are_reported_together() -> None:
    with pytest.raises(ConfigError) as raised:
        Config.from_env(env(REDIS_URL=None, TIP_TTL_SECONDS="0", LEG_MAX_ATTEMPTS="ten"))
    problems = raised.value.problems
    assert problems[0] == "missing REDIS_URL"
    assert any(p.startswith("TIP_TTL_SECONDS") for p in problems)
    assert any(p.startswith("LEG_MAX_ATTEMPTS") for p in problems)
    assert "ten" not in str(raised.value)


@pytest.mark.parametrize(
    "setting",
    [
        base64.urlsafe_b64encode(b"short").decode(),
        base64.urlsafe_b64encode(b"x" * 33).decode(),
        "not base64 at all!",
        "0:" + KEY,
        "2:" + KEY + ",2:" + KEY,
        KEY + "," + KEY,
        # Refused by Fingerprints too: Config validates with its parser, so the app never
        # starts with a setting the store then cannot use.
        "1:" + KEY + ",",
        "+1:" + KEY,
    ],
)
def test_encryption_key_must_be_32_bytes_with_unique_positive_ids(setting: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Config.from_env(env(API_KEY_ENCRYPTION_KEY=setting))
    assert "API_KEY_ENCRYPTION_KEY" in str(raised.value)
    assert setting not in str(raised.value)


def test_several_encryption_keys_with_ids_are_accepted() -> None:
    other = base64.urlsafe_b64encode(b"o" * 32).decode().rstrip("=")
    config = Config.from_env(env(API_KEY_ENCRYPTION_KEY=f"3:{KEY},1:{other}"))
    assert config.api_key_encryption_key.startswith("3:")


def test_webhook_secret_must_start_with_whsec() -> None:
    with pytest.raises(ConfigError, match="BLINK_WEBHOOK_SECRET"):
        Config.from_env(env(BLINK_WEBHOOK_SECRET="c2VjcmV0"))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PG_POOL_MAX_SIZE", "-1"),
        ("REDIS_SOCKET_TIMEOUT_SECONDS", "0"),
        ("LOG_LEVEL", "LOUD"),
        ("DATABASE_URL", "mysql://db"),
        ("CORS_ALLOWED_ORIGINS", "pos.example.com"),
    ],
)
def test_invalid_values_are_rejected_by_name(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Config.from_env(env(**{name: value}))


def test_pool_min_size_may_not_exceed_max_size() -> None:
    with pytest.raises(ConfigError, match="PG_POOL_MIN_SIZE"):
        Config.from_env(env(PG_POOL_MIN_SIZE="5", PG_POOL_MAX_SIZE="3"))


def test_secrets_are_hidden_from_repr() -> None:
    text = repr(Config.from_env(env()))
    assert REQUIRED["BLINKPOS_API_KEY"] not in text
    assert KEY not in text


def clean_environment() -> dict[str, str]:
    keep = {name: value for name, value in os.environ.items() if name not in VARIABLES}
    return {**keep, "PYTHONPATH": str(REPO_ROOT)}


COMMANDS_THAT_READ_CONFIG = [
    ["-m", "service", "config", "check"],
    ["-m", "service", "db", "upgrade"],
    ["-c", "import wsgi"],
]


@pytest.mark.parametrize("command", COMMANDS_THAT_READ_CONFIG)
def test_missing_settings_exit_2_with_one_line_and_no_traceback(command: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, *command],
        cwd=REPO_ROOT,
        env=clean_environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "DATABASE_URL" in lines[0]
    assert "Traceback" not in result.stderr
