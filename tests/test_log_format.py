"""LOG_FORMAT: one readable line per record on a terminal, JSON lines otherwise or when asked."""

from __future__ import annotations

import io
import json
import logging
import os

import pytest

from service.logging import JsonFormatter, TextFormatter, make_formatter

KEY = "blink_Ab3-Cd4_" + "Ef5Gh6" * 6


def record(message: str = "request_completed", **fields: object) -> logging.LogRecord:
    entry = logging.LogRecord("service.access", logging.INFO, __file__, 1, message, None, None)
    for name, value in fields.items():
        setattr(entry, name, value)
    return entry


@pytest.fixture
def terminal():
    leader, follower = os.openpty()
    stream = os.fdopen(follower, "w")
    try:
        yield stream
    finally:
        stream.close()
        os.close(leader)


def test_auto_is_text_on_a_terminal_and_json_elsewhere(terminal) -> None:
    assert isinstance(make_formatter("auto", terminal), TextFormatter)
    assert isinstance(make_formatter("auto", io.StringIO()), JsonFormatter)
    assert isinstance(make_formatter("json", terminal), JsonFormatter)
    assert isinstance(make_formatter("text", io.StringIO()), TextFormatter)


def test_a_text_line_has_time_level_event_and_fields_and_no_key() -> None:
    fields = {"method": "GET", "path": f"/api/payment-status/{KEY}", "status": 200}
    line = TextFormatter().format(record(**fields, memo="two coffees", request_id="r-1"))
    assert "\n" not in line
    clock, level, event, *rest = line.split()
    assert len(clock) == 12 and clock[2] == ":" and level == "INFO" and event == "request_completed"
    assert "method=GET" in rest and "status=200" in rest and "request_id=r-1" in rest
    assert 'memo="two coffees"' in line
    assert KEY[6:] not in line and "[redacted]" in line


def test_library_prose_gets_a_stable_event_and_keeps_its_text() -> None:
    entry = json.loads(JsonFormatter().format(logging.LogRecord(
        "gunicorn.error", logging.INFO, __file__, 1, "Booting worker with pid: %s", (42,), None
    )))
    assert entry["event"] == "gunicorn_log" and entry["message"] == "Booting worker with pid: 42"
