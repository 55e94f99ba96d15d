"""One log line per request (`request_completed`), and a request id for every request.

The id is the client's X-Request-ID when sane, else a fresh one; it is echoed in the response
and carried by every log record written while the request runs. gunicorn's access log is off
(gunicorn.conf.py), so this is the only line a request writes.
"""

from __future__ import annotations

import logging
import time

from flask import Flask, Response, g, request

from service.logging import bind_request_id, sane_request_id, unbind_request_id

REQUEST_ID_HEADER = "X-Request-ID"
access_log = logging.getLogger("service.access")


def init_request_logging(app: Flask) -> None:
    @app.before_request
    def assign_request_id() -> None:
        g.request_id = sane_request_id(request.headers.get(REQUEST_ID_HEADER))
        g.request_started = time.perf_counter()
        g.request_id_token = bind_request_id(g.request_id)

    @app.after_request
    def log_and_echo_request_id(response: Response) -> Response:
        request_id = g.get("request_id") or sane_request_id(None)  # None: failed before our hook ran
        response.headers[REQUEST_ID_HEADER] = request_id
        started = g.get("request_started")
        access_log.info(
            "request_completed",
            extra={
                "request_id": request_id,
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2) if started else None,
                "remote_addr": request.remote_addr,
            },
        )
        return response

    @app.teardown_request
    def forget_request_id(_error: BaseException | None) -> None:
        token = g.pop("request_id_token", None)
        if token is not None:
            unbind_request_id(token)
