"""Merchant keys on public endpoints, and per-client throttles (issue 13 §2, §3).

A merchant is its key's fingerprints: is_merchant_of matches a stored one; accepted_merchant_key
asks Blink (split profiles, which a merchant may set up before its first sale).

Failed key checks are counted per client address on every endpoint that takes a merchant key;
once an address has used up its allowance, every key-authenticated call from it is refused
until the window ends, right key or not, so guessing keys gains nothing from speed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from flask import request

from service.api.fields import MAX_API_KEY_CHARS
from service.api.payment_errors import blink_unavailable
from service.blink import BlinkError, BlinkForbidden, BlinkUnauthorized, BlinkUnavailable
from service.context import services
from service.errors import BadGateway, BadRequest, TooManyRequests, Unauthorized
from service.store.lookups import LookupCache

_FAILED_AUTH = "auth-failed"
API_KEY_HEADER = "X-API-KEY"
# Answers with merchant data are for their merchant only: no shared cache may keep them.
NO_STORE = {"Cache-Control": "private, no-store"}
_KEY_SHAPE = re.compile(rf"[!-~]{{1,{MAX_API_KEY_CHARS}}}")


def client_address() -> str:
    return request.remote_addr or "unknown"


def refuse_if_failing_auth() -> None:
    """429 when this client address failed too many key checks in the current window."""
    svc = services()
    decision = svc.limiter.check(_FAILED_AUTH, client_address(), svc.config.rate_limit_failed_auth_per_minute)
    if not decision.allowed:
        raise TooManyRequests(
            "too_many_failed_attempts",
            "Too many requests with a wrong API key from this address; wait a minute and try again.",
            decision.retry_after,
        )


def count_failed_auth() -> None:
    """One more failed key check by this client address (the limit applies from its next call)."""
    svc = services()
    svc.limiter.hit_all([(_FAILED_AUTH, client_address(), svc.config.rate_limit_failed_auth_per_minute)])


def enforce_rate_limits(endpoint: str, checks: Sequence[tuple[str, str, int]], message: str) -> None:
    """Counts one hit per (scope, identity, limit) under endpoint; 429 naming the scope refused."""
    decision = services().limiter.hit_all(
        [(f"{endpoint}:{scope}", identity, limit) for scope, identity, limit in checks]
    )
    if not decision.allowed:
        raise TooManyRequests(
            "rate_limited",
            message,
            decision.retry_after,
            {"scope": decision.scope.removeprefix(f"{endpoint}:")},
        )


def is_merchant_of(stored_fingerprint: str | None) -> bool:
    """Whether X-API-KEY is the key this fingerprint was made from (the merchant's full view).

    No header, or a sale whose merchant has no key (paid at a Lightning Address): False, as for
    anyone. A key that does not match counts as a failed check.
    """
    api_key = request.headers.get(API_KEY_HEADER)
    if not api_key or stored_fingerprint is None:
        return False
    refuse_if_failing_auth()
    if services().fingerprints.matches(api_key, stored_fingerprint):
        return True
    count_failed_auth()
    return False


def accepted_merchant_key() -> tuple[str, ...]:
    """The fingerprints of X-API-KEY once Blink accepts the key (a positive answer is cached ten
    minutes); 401 unauthorized otherwise. For a merchant that may have made no sale yet."""
    api_key = request.headers.get(API_KEY_HEADER, "")
    if not api_key:
        raise Unauthorized("unauthorized", "Send your Blink API key in the X-API-KEY header.")
    refuse_if_failing_auth()
    if not _KEY_SHAPE.fullmatch(api_key):
        count_failed_auth()
        raise Unauthorized("unauthorized", "Blink did not accept this API key.")
    fingerprints = services().fingerprints.candidates(api_key)
    require_blink_accepts(api_key, fingerprints)
    return fingerprints


def require_blink_accepts(api_key: str, fingerprints: Sequence[str]) -> None:
    """Returns once Blink accepts the key (a yes is remembered ten minutes under its current
    fingerprint, fingerprints[0]); raises the 4xx/5xx that says why not. The caller has already
    passed refuse_if_failing_auth."""
    svc = services()
    cache = LookupCache(svc.redis)
    if cache.key_accepted(fingerprints[0]):
        return
    try:
        svc.blink.wallets(api_key)
    except BlinkForbidden:
        raise BadRequest(
            "merchant_key_cannot_read", "This API key may not read its account at Blink: use a key "
            "with the READ scope."
        ) from None
    except BlinkUnauthorized:
        count_failed_auth()
        raise Unauthorized("unauthorized", "Blink did not accept this API key.") from None
    except BlinkUnavailable as error:
        raise blink_unavailable(error) from None
    except BlinkError:
        message = "Blink refused to check this API key."
        raise BadGateway("blink_rejected", message, {"retryable": False}) from None
    cache.remember_key_accepted(fingerprints[0])
