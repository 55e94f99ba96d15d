"""CORS for the POS page, which may be served from another origin.

Only the exact origins in CORS_ALLOWED_ORIGINS are allowed, never a wildcard; with none
configured no CORS header is sent at all and browsers keep the same-origin rule.
"""

from __future__ import annotations

from flask import Flask
from flask_cors import CORS


def init_cors(app: Flask, origins: tuple[str, ...]) -> None:
    allowed = [origin for origin in origins if origin and origin != "*"]
    if not allowed:
        return
    CORS(
        app,
        resources={r"/api/*": {"origins": allowed}},
        methods=["GET", "POST", "OPTIONS"],
        allow_headers=["Content-Type", "X-Request-ID", "X-API-KEY"],
        expose_headers=["X-Request-ID", "Retry-After"],
        supports_credentials=False,
        max_age=600,
    )
