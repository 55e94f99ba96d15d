"""Every command fails with one line naming the problem and what to do, and a documented exit
status; each command asks only for the settings it uses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from service.config import VARIABLES
from service.devstack import MEMORY_FILE
from tests.fixtures.servers import REPO_ROOT, TEST_ENCRYPTION_KEY
from tests.fixtures.simulator import free_port

EXIT_CONFIG, EXIT_UNREACHABLE = 2, 3


def run(args: list[str], cwd: Path = REPO_ROOT, **settings: str) -> subprocess.CompletedProcess:
    env = {name: value for name, value in os.environ.items() if name not in VARIABLES}
    env.update(settings, PYTHONPATH=str(REPO_ROOT), PG_CONNECT_TIMEOUT_SECONDS="2")
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=90
    )


def one_line(result: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def unreachable_postgres() -> str:
    return f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"


@pytest.mark.parametrize(
    "command",
    [
        ["-m", "service", "db", "upgrade"],
        ["-m", "service", "splits", "failed"],
        ["-m", "service", "splits", "retry", "ab" * 32],
    ],
)
def test_postgres_unreachable_is_one_line_and_exit_3(command: list[str]) -> None:
    result = run(
        command, DATABASE_URL=unreachable_postgres(), REDIS_URL="redis://127.0.0.1:1/0",
        API_KEY_ENCRYPTION_KEY=TEST_ENCRYPTION_KEY,
    )
    line = one_line(result)
    assert result.returncode == EXIT_UNREACHABLE
    assert "Postgres" in line and "DATABASE_URL" in line


def test_demo_without_a_running_stack_is_one_line_and_exit_3(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    (tmp_path / ".dev").mkdir()
    accounts = [
        {"username": name, "apiKey": "blink_" + "k" * 48, "btcWalletId": f"w-{name}"}
        for name in ("blinkpos", "demo_merchant", "alice", "bob")
    ]
    memory = {"serviceUrl": dead, "simulatorUrl": dead, "accounts": accounts}
    (tmp_path / ".dev" / MEMORY_FILE).write_text(json.dumps(memory))
    result = run(["-m", "service", "demo", "--dev-dir", str(tmp_path / ".dev")], cwd=tmp_path)
    line = one_line(result)
    assert result.returncode in (1, EXIT_UNREACHABLE)
    assert "python -m service dev" in line


def test_demo_before_dev_ever_ran_is_one_line(tmp_path: Path) -> None:
    result = run(["-m", "service", "demo", "--dev-dir", str(tmp_path / "nothing")], cwd=tmp_path)
    assert result.returncode == 1
    assert "python -m service dev" in one_line(result)


@pytest.mark.parametrize(
    ("command", "settings"),
    [
        (["-m", "service", "splits", "failed", "--json"], {}),
        (["-m", "service", "db", "upgrade"], {}),
        (["-m", "migrate", "--dry-run", "--file", "{file}"], {}),
    ],
)
def test_operator_commands_need_no_blink_settings(
    clean_db: str, clean_redis: str, tmp_path: Path, command: list[str], settings: dict
) -> None:
    legacy = tmp_path / ".tip-store.json"
    legacy.write_text("{}")
    args = [part.replace("{file}", str(legacy)) for part in command]
    result = run(
        args, DATABASE_URL=clean_db, REDIS_URL=clean_redis, API_KEY_ENCRYPTION_KEY=TEST_ENCRYPTION_KEY,
        **settings,
    )
    assert result.returncode == 0, result.stderr
    assert "BLINK" not in result.stderr


def test_a_bad_setting_is_one_line_and_exit_2() -> None:
    result = run(["-m", "service", "splits", "failed"], DATABASE_URL="mysql://nope")
    assert result.returncode == EXIT_CONFIG
    assert "DATABASE_URL" in one_line(result)


@pytest.mark.parametrize("payment_hash", ["abc", "zz" * 32, "ab" * 33])
def test_retry_of_something_that_is_not_a_payment_hash_is_bad_usage(payment_hash: str) -> None:
    # A typo is the caller's, not "unknown split": exit 2, before any setting or server is needed.
    result = run(["-m", "service", "splits", "retry", payment_hash])
    assert result.returncode == EXIT_CONFIG
    line = one_line(result)
    assert payment_hash in line and "64 hexadecimal" in line


@pytest.mark.parametrize(
    ("command", "named"),
    [
        (["dev", "--port", "99999"], "--port: '99999' is not a whole number from 1 to 65535"),
        (["dev", "--simulator-port", "0"], "--simulator-port: '0' is not a whole number from 1 to 65535"),
        (["worker", "--metrics-port", "x"], "--metrics-port: 'x' is not a whole number from 1 to 65535"),
        (["splits", "failed", "--limit", "-3"], "--limit: '-3' is not a whole number of at least 1"),
    ],
)
def test_an_out_of_range_number_is_a_usage_error_naming_the_option(command: list[str], named: str) -> None:
    # Before: a gunicorn traceback for the port, a Postgres one for a negative limit.
    result = run(["-m", "service", *command])
    assert result.returncode == EXIT_CONFIG
    assert "Traceback" not in result.stderr
    assert named in result.stderr.strip().splitlines()[-1]
