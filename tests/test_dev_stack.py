"""README's run command works: `python -m service dev` serves, and `python -m service demo` adds up."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

REPO_ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def dev_stack(tmp_path: Path):
    port = free_port()
    dev_dir = tmp_path / "dev"
    log = (tmp_path / "dev.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "service", "dev", "--port", str(port), "--dev-dir", str(dev_dir)],
        cwd=REPO_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert process.poll() is None, (tmp_path / "dev.log").read_text()
            time.sleep(0.3)
        else:
            pytest.fail("dev stack not ready within 30 s:\n" + (tmp_path / "dev.log").read_text())
        yield url, dev_dir
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def test_dev_stack_serves_and_demo_sale_adds_up(dev_stack):
    url, dev_dir = dev_stack
    assert requests.get(f"{url}/api/health", timeout=5).json()["status"] == "healthy"

    demo = subprocess.run(
        [sys.executable, "-m", "service", "demo", "--dev-dir", str(dev_dir)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "every sat accounted for" in demo.stdout
    assert "+8500" in demo.stdout  # the merchant's base: 10,000 sats less a 1,500 sat tip
