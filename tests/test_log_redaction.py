"""Whole key-shaped tokens are redacted from logs: Blink's shape and the simulator's, in text,
in a request path and in X-Request-ID; no run of a key's secret part survives."""

from __future__ import annotations

import json
import logging
import secrets
import string

import pytest
from flask.testing import FlaskClient

from service.logging import JsonFormatter, redact_text

ALPHANUMERIC = string.ascii_letters + string.digits
# Blink's dashboard keys: `blink_` and 48 alphanumerics.
BLINK_SHAPED = "blink_" + "".join(secrets.choice(ALPHANUMERIC) for _ in range(48))
# The simulator's: `blink_` and token_urlsafe(36), whose 48 characters include `-` and `_`.
SIMULATOR_SHAPED = "blink_" + "Ab3-" * 4 + "Cd4_" * 4 + secrets.token_urlsafe(12)[:16].ljust(16, "x")
KEYS = [BLINK_SHAPED, SIMULATOR_SHAPED, "blink_" + secrets.token_urlsafe(36)]
KEY_IDS = ["blink", "simulator", "simulator-random"]


def leaked_fragments(key: str, text: str, width: int = 6) -> list[str]:
    """Every run of `width` characters of the key's secret part that appears in text."""
    secret = key.removeprefix("blink_")
    return [secret[i : i + width] for i in range(len(secret) - width + 1) if secret[i : i + width] in text]


@pytest.mark.parametrize("key", KEYS, ids=KEY_IDS)
@pytest.mark.parametrize(
    "template",
    [
        "GET /api/payment-status/{key}",
        "GET /api/payment-status/{key}?x=1",
        "request_id={key}",
        '"X-Request-ID": "{key}"',
        "key={key}.",
        "({key})",
    ],
)
def test_key_shaped_tokens_are_redacted_whole(key: str, template: str) -> None:
    text = redact_text(template.format(key=key))
    assert leaked_fragments(key, text) == [], text


def test_text_without_keys_is_left_alone() -> None:
    text = "GET /api/payment-status/" + "ab" * 32 + " status=200 blink_call_failed"
    assert redact_text(text) == text


@pytest.mark.parametrize("key", KEYS, ids=KEY_IDS)
def test_a_key_in_the_path_and_the_request_id_never_reaches_the_log(
    client: FlaskClient, key: str, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client.get(f"/api/payment-status/{key}", headers={"X-Request-ID": key})
    client.get(f"/api/payment-status/{key}/x", headers={"X-Request-ID": "r-" + key})
    captured = capfd.readouterr()
    formatter = JsonFormatter()
    lines = [formatter.format(record) for record in caplog.records]
    assert any(json.loads(line).get("path", "").startswith("/api/payment-status/") for line in lines)
    everything = "\n".join(lines) + captured.out + captured.err
    assert leaked_fragments(key, everything) == []
