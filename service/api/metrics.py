"""GET /metrics (Prometheus text format) and the per-request instrumentation hooks."""

from __future__ import annotations

import time

from flask import Blueprint, Flask, Response, g, request

from service.context import services
from service.metrics import Metrics

metrics_blueprint = Blueprint("metrics", __name__)


@metrics_blueprint.get("/metrics")
def metrics_view() -> Response:
    """Prometheus metrics.
    ---
    get:
      operationId: metrics
      tags: [operations]
      summary: Prometheus metrics (text exposition format)
      responses:
        200: {description: Prometheus text format, content: {text/plain: {schema: {type: string}}}}
    """
    svc = services()
    svc.metrics.sync_cache_counters(svc.cache.counters.snapshot())
    body, content_type = svc.metrics.exposition()
    return Response(body, mimetype=None, content_type=content_type)


def init_request_metrics(app: Flask, metrics: Metrics) -> None:
    """Count and time every request, labelled by its url rule (never the raw path: a payment
    hash in the path would make one time series per sale)."""

    @app.before_request
    def start_request_timer() -> None:
        g.metrics_started = time.perf_counter()

    @app.after_request
    def observe_request(response: Response) -> Response:
        started = g.get("metrics_started")
        endpoint = request.url_rule.rule if request.url_rule is not None else "unmatched"
        elapsed = time.perf_counter() - started if started is not None else 0.0
        metrics.observe_request(endpoint, request.method, response.status_code, elapsed)
        # Each gunicorn worker copies its own cache counters, so a scrape served by any one of
        # them still sees every process's hits and misses (multiprocess mode).
        metrics.sync_cache_counters(services().cache.counters.snapshot())
        return response
