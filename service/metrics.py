"""Prometheus instruments of one process, and the exposition for GET /metrics.

Each `Metrics` owns a private CollectorRegistry, so several apps in one process (the tests)
never collide. Under gunicorn with several workers, PROMETHEUS_MULTIPROC_DIR is set: the
instruments then write to per-process files (prometheus-client decides that when it is
imported) and `exposition()` aggregates every process's files with a MultiProcessCollector in a
fresh registry; gunicorn.conf.py marks dead workers' files.

The observers here are the callables the Blink client, the Forwarder and the webhook processor
take, so those modules never import prometheus-client.
"""

from __future__ import annotations

import glob
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry

        def counter(name: str, documentation: str, *labels: str) -> Counter:
            return Counter(name, documentation, labels, registry=r)

        def histogram(name: str, documentation: str, *labels: str) -> Histogram:
            return Histogram(name, documentation, labels, buckets=_LATENCY_BUCKETS, registry=r)

        def worker_gauge(name: str, documentation: str) -> Gauge:
            # livemax: the freshest live process's value, never a dead one's nor a sum.
            return Gauge(name, documentation, registry=r, multiprocess_mode="livemax")

        self.http_requests = counter(
            "blinkpos_http_requests_total",
            "HTTP requests by endpoint (url rule), method and status",
            "endpoint", "method", "status",
        )
        self.http_latency = histogram(
            "blinkpos_http_request_duration_seconds",
            "HTTP request latency by endpoint (url rule)",
            "endpoint", "method",
        )
        self.cache_operations = counter(
            "blinkpos_cache_operations_total",
            "Split cache (Redis) operations: hit, miss, error, write, delete",
            "result",
        )
        self.forwards = counter(
            "blinkpos_forwards_total",
            "Forwarding runs by outcome: completed, incomplete (retried later), failed",
            "outcome",
        )
        self.legs = counter(
            "blinkpos_forward_legs_total",
            "Leg payment attempts by outcome: paid, failed (scheduled for retry)",
            "outcome",
        )
        self.leg_failures = counter(
            "blinkpos_forward_leg_failures_total",
            "Failed leg payment attempts by reason: timeout, unavailable, rejected, unauthorized, pending",
            "reason",
        )
        self.leg_retries = counter(
            "blinkpos_leg_retries_total", "Failed legs the worker took up again for another attempt"
        )
        self.blink_latency = histogram(
            "blinkpos_blink_request_duration_seconds",
            "Blink API call latency by operation and outcome",
            "operation", "outcome",
        )
        self.blink_calls = counter(
            "blinkpos_blink_requests_total",
            "Blink API calls by operation and outcome (errors: outcome != success)",
            "operation", "outcome",
        )
        self.webhooks = counter("blinkpos_webhooks_total", "Blink webhook deliveries by result", "result")
        self.worker_lag = worker_gauge(
            "blinkpos_worker_lag_seconds", "Age of the oldest split waiting for the worker"
        )
        # Backlog figures the worker refreshes from Postgres (alerts: money stuck or failed).
        self.splits_failed = worker_gauge(
            "blinkpos_splits_failed", "Splits in status failed: out of leg attempts, waiting for an operator"
        )
        self.oldest_unforwarded_age = worker_gauge(
            "blinkpos_oldest_unforwarded_split_age_seconds",
            "Seconds since the oldest paid split still not fully forwarded was paid (0 when none)",
        )
        self.legs_retrying = worker_gauge(
            "blinkpos_legs_retrying", "Failed legs of unfinished splits waiting for their next attempt"
        )
        self.worker_last_cycle = worker_gauge(
            "blinkpos_worker_last_cycle_timestamp_seconds", "Unix time the worker loop last showed it turns"
        )
        self.worker_cycles = counter(
            "blinkpos_worker_cycles_total", "Worker loop cycles by result: ok, error", "result"
        )
        self.worker_forward_seconds = histogram(
            "blinkpos_worker_forward_duration_seconds", "Time the worker took to forward one split"
        )
        self.pending_checks = counter(
            "blinkpos_pending_status_checks_total",
            "Pending splits asked at Blink by the worker, by answer",
            "answer",
        )
        self.lnurl_resolutions = counter(
            "blinkpos_lnurl_resolutions_total",
            "Recipient resolutions by outcome (resolved, cached, failed) and reason (why it failed)",
            "outcome", "reason",
        )
        self.lnurl_legs = counter(
            "blinkpos_lnurl_legs_total",
            "Attempts to pay a leg at a Lightning Address / LNURL by outcome (paid, failed, pending) "
            "and reason (ok, the LNURL failure, fee_above_reserve, blink_<outcome>)",
            "outcome", "reason",
        )
        self.lnurl_fees = counter(
            "blinkpos_lnurl_fees_paid_sats_total",
            "Routing fees paid for legs paid at a Lightning Address / LNURL, in sats",
        )
        self._cache_seen: dict[str, int] = {}
        self._cache_lock = threading.Lock()

    # -- observers handed to other modules -----------------------------------------------------

    def observe_blink(self, operation: str, seconds: float, outcome: str) -> None:
        """BlinkClient's observer(operation, seconds, outcome)."""
        self.blink_latency.labels(operation, outcome).observe(seconds)
        self.blink_calls.labels(operation, outcome).inc()

    def observe_lnurl(self, outcome: str, reason: str) -> None:
        """RecipientResolver's observer(outcome, reason); reasons are a fixed set of labels."""
        self.lnurl_resolutions.labels(outcome, reason).inc()

    def observe_forward(self, event: str, outcome: str) -> None:
        """Forwarder's observer(event, outcome): event "forward", "leg" or "leg_failure" (outcome: reason)."""
        if event == "forward":
            self.forwards.labels(outcome).inc()
        elif event == "leg":
            self.legs.labels(outcome).inc()
        elif event == "leg_failure":
            self.leg_failures.labels(outcome).inc()

    def observe_lnurl_leg(self, outcome: str, reason: str, fee_sats: int) -> None:
        """LnurlLegs' observer(outcome, reason, fee_sats): one attempt, and the fee of a paid leg."""
        self.lnurl_legs.labels(outcome, reason).inc()
        if fee_sats > 0:
            self.lnurl_fees.inc(fee_sats)

    def observe_webhook(self, result: str) -> None:
        self.webhooks.labels(result).inc()

    def observe_request(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        self.http_requests.labels(endpoint, method, str(status)).inc()
        self.http_latency.labels(endpoint, method).observe(seconds)

    def sync_cache_counters(self, snapshot: Mapping[str, int]) -> None:
        """Adds what SplitCache's in-process counters gained since the last sync.

        The cache counts in plain ints (it must not depend on prometheus); copying the deltas
        keeps the exported counters monotonic and correct in multiprocess mode.
        """
        with self._cache_lock:
            for name, value in snapshot.items():
                gained = value - self._cache_seen.get(name, 0)
                if gained > 0:
                    self.cache_operations.labels(_CACHE_RESULT.get(name, name)).inc(gained)
                self._cache_seen[name] = value

    # -- exposition ----------------------------------------------------------------------------

    def exposition(self) -> tuple[bytes, str]:
        """The text format body and its content type: every process's values in multiprocess mode."""
        return generate_latest(self.collecting_registry()), CONTENT_TYPE_LATEST

    def collecting_registry(self) -> CollectorRegistry:
        """The registry whose values describe the service (all processes in multiprocess mode)."""
        if multiprocess_dir() is not None:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return registry
        return self.registry


def serve_metrics(metrics: Metrics, address: str, port: int):
    """/metrics for a process without a web app (the worker), on a daemon thread; returns the
    server (call shutdown()). Clears multiprocess files a previous run in the same directory
    left behind: a dead process's gauges would otherwise be reported as live."""
    metrics_dir = multiprocess_dir()
    if metrics_dir is not None:
        own = f"_{os.getpid()}.db"
        for stale in glob.glob(os.path.join(metrics_dir, "*.db")):
            if not stale.endswith(own):
                os.remove(stale)
    server, _thread = start_http_server(port, address, registry=metrics.collecting_registry())
    return server


_CACHE_RESULT = {"hits": "hit", "misses": "miss", "errors": "error", "writes": "write", "deletes": "delete"}


@dataclass(frozen=True)
class Sample:
    name: str
    value: float
    tags: dict[str, str]


class SampleWindow:
    """Turns cumulative instrument values into per-window samples for system_metrics.

    Each call to `take()` reports what happened since the previous call: the cache hit rate,
    the average worker forward time, and error counts (Blink, HTTP 5xx, cache).
    """

    def __init__(self) -> None:
        self._previous: dict[str, float] = {}

    def take(self, registry: CollectorRegistry) -> list[Sample]:
        totals = _totals(registry)
        delta = {name: value - self._previous.get(name, 0.0) for name, value in totals.items()}
        self._previous = totals
        samples: list[Sample] = []
        hits, misses = delta.get("cache_hit", 0.0), delta.get("cache_miss", 0.0)
        if hits + misses > 0:
            samples.append(Sample("cache_hit_rate", hits / (hits + misses), {"window": "since_last_sample"}))
        samples.append(Sample("cache_hits", hits, {}))
        samples.append(Sample("cache_misses", misses, {}))
        count = delta.get("forward_count", 0.0)
        if count > 0:
            samples.append(
                Sample("forward_processing_seconds_avg", delta.get("forward_sum", 0.0) / count, {})
            )
        samples.append(Sample("errors", delta.get("blink_errors", 0.0), {"source": "blink"}))
        samples.append(Sample("errors", delta.get("http_5xx", 0.0), {"source": "http"}))
        samples.append(Sample("errors", delta.get("cache_error", 0.0), {"source": "cache"}))
        samples.append(Sample("forward_legs_failed", delta.get("legs_failed", 0.0), {}))
        return samples


def _totals(registry: CollectorRegistry) -> dict[str, float]:
    totals: dict[str, float] = {}

    def add(key: str, value: float) -> None:
        totals[key] = totals.get(key, 0.0) + value

    for family in registry.collect():
        for sample in family.samples:
            name, labels = sample.name, sample.labels
            if name == "blinkpos_cache_operations_total":
                add(f"cache_{labels.get('result')}", sample.value)
            elif name == "blinkpos_worker_forward_duration_seconds_sum":
                add("forward_sum", sample.value)
            elif name == "blinkpos_worker_forward_duration_seconds_count":
                add("forward_count", sample.value)
            elif name == "blinkpos_blink_requests_total" and labels.get("outcome") != "success":
                add("blink_errors", sample.value)
            elif name == "blinkpos_http_requests_total" and labels.get("status", "").startswith("5"):
                add("http_5xx", sample.value)
            elif name == "blinkpos_forward_legs_total" and labels.get("outcome") == "failed":
                add("legs_failed", sample.value)
    return totals
