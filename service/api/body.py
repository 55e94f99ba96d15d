"""Reading a JSON request body with the error codes the POS page relies on."""

from __future__ import annotations

from typing import Any

from flask import request
from werkzeug.exceptions import UnsupportedMediaType

from service.errors import BadRequest


def json_body() -> dict[str, Any]:
    """The body as a JSON object: 415 for another content type, 400 `invalid_json` otherwise."""
    if not request.is_json:
        raise UnsupportedMediaType()
    # Reading the data enforces MAX_CONTENT_LENGTH (413) before anything is parsed.
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # nested deeper than the parser's stack allows
        raise BadRequest("invalid_json", "The request body is nested too deeply.") from None
    if body is None:
        raise BadRequest("invalid_json", "The request body is not valid JSON.")
    if not isinstance(body, dict):
        raise BadRequest("invalid_json", "The request body must be a JSON object.")
    return body
