"""Typed errors of the Blink client.

Callers decide on ``retryable``: a retryable error means the outcome is unknown or transient
(the same request may be sent again; for a payment that is safe because Blink answers
ALREADY_PAID for an invoice already paid). Messages never contain an API key.
"""

from __future__ import annotations


class BlinkError(Exception):
    """Base of every error the Blink client raises."""

    retryable: bool = False
    default_code: str = "blink_error"

    def __init__(self, message: str, *, code: str | None = None, operation: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.operation = operation

    def __str__(self) -> str:
        where = f"{self.operation}: " if self.operation else ""
        return f"{where}{self.message} ({self.code})"

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}(code={self.code!r}, message={self.message!r}, operation={self.operation!r})"


class BlinkUnavailable(BlinkError):
    """Blink could not be reached or answered unusably: network error, 5xx, rate limit, bad JSON."""

    retryable = True
    default_code = "blink_unavailable"


class BlinkTimeout(BlinkUnavailable):
    """No answer within the timeout; a mutation may nevertheless have been performed."""

    default_code = "blink_timeout"


class BlinkRejected(BlinkError):
    """Blink understood the request and refused it (payload ``errors``, FAILURE, GraphQL errors)."""

    default_code = "blink_rejected"

    def __init__(self, code: str, message: str, *, operation: str | None = None) -> None:
        super().__init__(message, code=code, operation=operation)


class BlinkUnauthorized(BlinkError):
    """The API key is missing, unknown or lacks the scope (HTTP 401/403 or an auth GraphQL error)."""

    default_code = "blink_unauthorized"


class BlinkForbidden(BlinkUnauthorized):
    """The API key is valid but its scopes do not allow the operation (Blink: NOT_AUTHORIZED)."""
