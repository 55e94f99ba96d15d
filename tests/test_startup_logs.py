"""What the app says once at start: a configured TIP_STORE_FILE that does not exist."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from service import create_app
from service.config import Config


def start_and_stop(config: Config) -> None:
    app = create_app(config)
    client = app.test_client()
    client.get("/api/payment-status/" + "ab" * 32)  # a lookup that reaches the fallback
    client.get("/api/payment-status/" + "cd" * 32)
    app.extensions["blinkpos"].close()


def test_a_configured_tip_store_file_that_is_missing_is_logged_once(
    clean_db, clean_redis, make_config: Callable[..., Config], tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    start_and_stop(make_config(tip_store_file=str(tmp_path / "nowhere" / ".tip-store.json")))
    missing = [record for record in caplog.records if record.getMessage() == "tip_store_file_missing"]
    assert len(missing) == 1 and missing[0].levelno == logging.WARNING
    assert missing[0].path.endswith(".tip-store.json")


def test_an_existing_or_unset_tip_store_file_is_not_reported(
    clean_db, clean_redis, make_config: Callable[..., Config], tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    present = tmp_path / ".tip-store.json"
    present.write_text("{}")
    start_and_stop(make_config(tip_store_file=str(present)))
    start_and_stop(make_config())
    assert not [record for record in caplog.records if record.getMessage() == "tip_store_file_missing"]
