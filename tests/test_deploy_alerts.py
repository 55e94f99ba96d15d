"""deploy/prometheus and deploy/grafana: the alert rules pass promtool's own checks and unit tests,
each alert tells the operator what to do, and every metric the rules and the dashboard name is
exported by a running app or worker.

promtool comes from Debian's `prometheus` package (.ci/install-system-deps.sh installs it); the
promtool tests skip, naming the reason, where it is not installed.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from flask.testing import FlaskClient

from service.config import Config
from service.devservers import free_port
from tests.fixtures.servers import REPO_ROOT
from tests.test_worker import worker_environment

RULES = REPO_ROOT / "deploy" / "prometheus" / "blinkpos-rules.yml"
RULE_TESTS = REPO_ROOT / "deploy" / "prometheus" / "blinkpos-rules.test.yml"
DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "blinkpos-dashboard.json"
METRIC_NAME = re.compile(r"\bblinkpos_[a-z0-9_]+\b")
# The conditions issue 17 asks an operator to be told about.
EXPECTED_ALERTS = {
    "BlinkposSplitsFailed", "BlinkposPaidSplitsNotForwarded", "BlinkposLegsRetryingLong",
    "BlinkposWorkerStalled", "BlinkposWorkerMissing", "BlinkposBlinkErrorsHigh",
    "BlinkposBlinkLatencyHigh", "BlinkposRedisDegraded", "BlinkposNotReady",
    "BlinkposWebhookSignatureFailures",
}

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool is not installed (.ci/install-system-deps.sh installs Debian's prometheus package)",
)


def alert_rules() -> list[dict]:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    panels = json.loads(DASHBOARD.read_text(encoding="utf-8"))["panels"]
    return [target["expr"] for panel in panels for target in panel["targets"]]


def names_in(expressions: list[str]) -> set[str]:
    return {name for expr in expressions for name in METRIC_NAME.findall(expr)}


def exported_names(exposition: str) -> set[str]:
    """Every series name a scrape can yield: sample names, and each declared family's names (a
    labelled counter shows only its # TYPE line until its first increment)."""
    names: set[str] = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, family, kind = line.split(maxsplit=3)
            names.add(family)
            if kind == "histogram":
                names |= {f"{family}_bucket", f"{family}_sum", f"{family}_count"}
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def sample_value(exposition: str, name: str) -> float:
    for line in exposition.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no unlabelled sample {name} in the scrape")


# --- promtool --------------------------------------------------------------------------------
@needs_promtool
def test_promtool_accepts_the_rules() -> None:
    result = subprocess.run(
        [PROMTOOL, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


@needs_promtool
def test_promtool_unit_tests_pass_each_alert_firing_and_staying_quiet() -> None:
    result = subprocess.run(
        [PROMTOOL, "test", "rules", RULE_TESTS.name], cwd=RULE_TESTS.parent,
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    tests = yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))["tests"]
    firing: set[str] = set()
    quiet: set[str] = set()
    for test in tests:
        for case in test["alert_rule_test"]:
            (firing if case["exp_alerts"] else quiet).add(case["alertname"])
    assert firing == EXPECTED_ALERTS, "every alert has a case where it fires"
    assert quiet == EXPECTED_ALERTS, "every alert has a case where it stays quiet"


@needs_promtool
def test_promtool_unit_tests_catch_a_broken_threshold(tmp_path: Path) -> None:
    rules = RULES.read_text(encoding="utf-8")
    broken = rules.replace("max(blinkpos_splits_failed) > 0", "max(blinkpos_splits_failed) > 5")
    assert broken != rules
    (tmp_path / RULES.name).write_text(broken, encoding="utf-8")
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    result = subprocess.run(
        [PROMTOOL, "test", "rules", RULE_TESTS.name], cwd=tmp_path,
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode != 0
    assert "BlinkposSplitsFailed" in result.stdout + result.stderr


# --- the rules' and the dashboard's content --------------------------------------------------
def test_every_alert_has_a_severity_a_summary_and_a_runbook() -> None:
    rules = alert_rules()
    assert {rule["alert"] for rule in rules} == EXPECTED_ALERTS
    for rule in rules:
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert len(rule["annotations"]["summary"]) > 20, rule["alert"]
        runbook = rule["annotations"]["runbook"]
        assert re.search(r"python -m service|kubectl|curl|promtool|Compare|Check", runbook), rule["alert"]
    for rule in rules:
        if rule["alert"] in {"BlinkposSplitsFailed", "BlinkposLegsRetryingLong"}:
            assert "python -m service splits failed" in rule["annotations"]["runbook"]


def test_the_dashboard_has_the_panels_an_operator_looks_for() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    titles = " | ".join(panel["title"].lower() for panel in dashboard["panels"])
    for wanted in ("sales", "forwards", "forward latency", "legs failing by reason", "blink api latency",
                   "blink api errors", "cache hit rate", "worker lag"):
        assert wanted in titles, wanted
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["targets"] and panel["datasource"]["uid"] == "${datasource}", panel["title"]
    assert "legs failing by reason" in titles and any("by (reason)" in e for e in dashboard_expressions())


# --- every named metric exists in a running app's and worker's /metrics ----------------------
def scrape_worker(config: Config, tmp_path: Path) -> tuple[str, Path]:
    """Runs `python -m service worker --metrics-port ...` and returns its /metrics after a few
    cycles, and its heartbeat file; the worker is stopped with SIGTERM and must exit 0."""
    port = free_port()
    heartbeat = tmp_path / "worker-heartbeat"
    process = subprocess.Popen(
        [sys.executable, "-m", "service", "worker", f"--metrics-port={port}", "--metrics-address=127.0.0.1",
         f"--heartbeat-file={heartbeat}"],
        cwd=REPO_ROOT, env=worker_environment(config),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    body = ""
    try:
        deadline = time.monotonic() + 20
        # One whole cycle done (its counter has a sample): the loop has set the gauges.
        while "blinkpos_worker_cycles_total{" not in body:
            if time.monotonic() > deadline or process.poll() is not None:
                break
            time.sleep(0.1)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
                    body = response.read().decode()
            except OSError:
                continue
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert "blinkpos_worker_cycles_total{" in body, f"the worker served no metrics after a cycle: {stderr}"
    assert process.returncode == 0, stderr
    return body, heartbeat


def test_every_metric_the_rules_and_dashboard_name_is_exported_by_the_app_or_the_worker(
    client: FlaskClient, make_config: Callable[..., Config], tmp_path: Path,
) -> None:
    response = client.get("/metrics")
    assert response.status_code == 200
    app_names = exported_names(response.get_data(as_text=True))
    worker_body, heartbeat = scrape_worker(make_config(), tmp_path)
    worker_names = exported_names(worker_body)

    used = names_in([rule["expr"] for rule in alert_rules()]) | names_in(dashboard_expressions())
    assert len(used) >= 15, "the expressions were not parsed"
    missing = used - app_names - worker_names
    assert not missing, f"named in deploy/ but exported by neither the app nor the worker: {sorted(missing)}"
    # The backlog gauges and the loop stamp carry values only the worker's loop sets.
    backlog = (
        "blinkpos_splits_failed", "blinkpos_oldest_unforwarded_split_age_seconds", "blinkpos_legs_retrying",
    )
    for name in backlog:
        assert sample_value(worker_body, name) == 0.0, name
    assert abs(sample_value(worker_body, "blinkpos_worker_last_cycle_timestamp_seconds") - time.time()) < 60
    assert time.time() - heartbeat.stat().st_mtime < 60, "the heartbeat file was touched"


def test_the_metric_name_check_would_notice_a_typo() -> None:
    exported = exported_names(
        '# TYPE blinkpos_forwards_total counter\nblinkpos_forwards_total{outcome="completed"} 1.0\n'
    )
    assert names_in(["rate(blinkpos_forward_total[5m])"]) - exported == {"blinkpos_forward_total"}
    assert names_in(["rate(blinkpos_forwards_total[5m])"]) - exported == set()
