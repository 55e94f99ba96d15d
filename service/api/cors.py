"""CORS for the POS page, which may be served from another origin.

Only the exact origins in CORS_ALLOWED_ORIGINS are allowed (Config accepts nothing else); with none
configured no CORS header is sent at all and browsers keep the same-origin rule. flask-cors reads
an origin holding a regex character as a pattern, so such an origin is refused here as well.
"""

from __future__ import annotations

from flask import Flask
from flask_cors import CORS

_PATTERN_CHARACTERS = set("*\\]?$^[](){}|+/")


def init_cors(app: Flask, origins: tuple[str, ...]) -> None:
    for origin in origins:
        if _PATTERN_CHARACTERS & set(origin.removeprefix("http://").removeprefix("https://")):
            raise ValueError("CORS origins must be exact origins scheme://host[:port]")
    if not origins:
        return
    CORS(
        app,
        resources={r"/api/*": {"origins": list(origins)}},
        methods=["GET", "POST", "OPTIONS"],
        allow_headers=["Content-Type", "X-Request-ID", "X-API-KEY"],
        expose_headers=["X-Request-ID", "Retry-After"],
        supports_credentials=False,
        max_age=600,
    )
