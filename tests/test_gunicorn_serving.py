"""The real app under a real gunicorn (2 workers), configured only by gunicorn.conf.py:
one log line per request, and /metrics that counts every worker without PROMETHEUS_MULTIPROC_DIR."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from blinksim.control import SimControl
from tests.fixtures.servers import REPO_ROOT, TEST_ENCRYPTION_KEY
from tests.fixtures.simulator import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

REQUESTS = 40


@pytest.fixture
def gunicorn_app(
    clean_db: str, clean_redis: str, sim_clean: SimControl, pos_account: dict, tmp_path: Path
) -> Iterator[tuple[str, subprocess.Popen, Path]]:
    port = free_port()
    env = {
        name: value for name, value in os.environ.items()
        if not name.startswith(("GUNICORN_", "PROMETHEUS_", "LOG_"))
    }
    env.update(
        DATABASE_URL=clean_db, REDIS_URL=clean_redis, BLINK_API_URL=sim_clean.graphql_url,
        BLINKPOS_API_KEY=pos_account["apiKey"], BLINKPOS_BTC_WALLET_ID=pos_account["btcWalletId"],
        API_KEY_ENCRYPTION_KEY=TEST_ENCRYPTION_KEY, GUNICORN_BIND=f"127.0.0.1:{port}",
        GUNICORN_WORKERS="2", GUNICORN_THREADS="4", GUNICORN_GRACEFUL_TIMEOUT="5",
        PG_POOL_MIN_SIZE="1", PG_POOL_MAX_SIZE="4", TMPDIR=str(tmp_path), ENVIRONMENT="test",
    )
    log_path = tmp_path / "gunicorn.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 45
        while True:
            assert server.poll() is None and time.monotonic() < deadline, log_path.read_text()
            try:
                if requests.get(f"{url}/livez", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.2)
        yield url, server, log_path
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(timeout=10)


def health_requests_counted(url: str) -> float:
    body = requests.get(f"{url}/metrics", timeout=10, headers={"Connection": "close"}).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
        if sample.name == "blinkpos_http_requests_total" and sample.labels.get("endpoint") == "/api/health"
    )


def test_gunicorn_logs_one_line_per_request_and_metrics_sum_every_worker(gunicorn_app) -> None:
    url, server, log_path = gunicorn_app

    def ask(number: int) -> int:
        headers = {"X-Request-ID": f"obs-{number}", "X-API-KEY": "header-secret", "Connection": "close"}
        return requests.get(f"{url}/api/health?apiKey=query-secret", headers=headers, timeout=20).status_code

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(ask, range(REQUESTS))) == {200}
    # Each scrape is served by whichever worker accepts it: every one must count all workers.
    assert [health_requests_counted(url) for _ in range(8)] == [REQUESTS] * 8

    os.killpg(server.pid, signal.SIGTERM)
    assert server.wait(timeout=30) == 0
    text = log_path.read_text()
    entries = [json.loads(line) for line in text.splitlines()]  # not a terminal: JSON lines only
    assert "secret" not in text
    for number in range(REQUESTS):
        lines = [entry for entry in entries if entry.get("request_id") == f"obs-{number}"]
        assert [entry["event"] for entry in lines] == ["request_completed"], lines
        assert (lines[0]["path"], lines[0]["status"]) == ("/api/health", 200)
    assert not any(entry["event"] == "http_access" for entry in entries), "gunicorn's access log is off"
    assert any(entry.get("message", "").startswith("Listening at") for entry in entries)
    assert not list(log_path.parent.glob("blinkpos-metrics-*")), "the private metrics directory is removed"
