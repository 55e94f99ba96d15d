"""Svix-style signed webhooks, the way Blink notifies an account of a received payment."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import requests

log = logging.getLogger("blinksim.webhooks")

_SECRET_PREFIX = "whsec_"


class WebhookConfigError(ValueError):
    """A malformed webhook target (the secret itself never appears in the message)."""


def decode_secret(secret: str) -> bytes:
    if not isinstance(secret, str) or not secret.startswith(_SECRET_PREFIX):
        raise WebhookConfigError("secret must be a Svix secret: whsec_<base64>")
    try:
        key = base64.b64decode(secret[len(_SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise WebhookConfigError("secret is not valid base64 after whsec_") from exc
    if not key:
        raise WebhookConfigError("secret is empty")
    return key


def sign(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """The `svix-signature` header value: v1,<base64 HMAC-SHA256 of "{id}.{ts}.{body}">."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


@dataclass(frozen=True)
class WebhookTarget:
    url: str
    key: bytes
    wallet_id: str | None = None  # deliver only this wallet's events; None: every wallet


class WebhookDispatcher:
    """Delivers events in background threads, with a short timeout and a few retries."""

    def __init__(
        self, *, timeout_seconds: float = 2.0, attempts: int = 3, backoff_seconds: float = 0.3
    ) -> None:
        self._timeout = timeout_seconds
        self._attempts = attempts
        self._backoff = backoff_seconds
        self._target: WebhookTarget | None = None
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None  # created on first use, never at import
        self.delivered = 0
        self.failed = 0

    def configure(self, url: str, secret: str, wallet_id: str | None = None) -> None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise WebhookConfigError("url must be an http(s) URL")
        self._target = WebhookTarget(url, decode_secret(secret), wallet_id)

    def clear(self) -> None:
        self._target = None

    def status(self) -> dict:
        target = self._target
        return {
            "url": target.url if target else None,
            "walletId": target.wallet_id if target else None,
            "delivered": self.delivered,
            "failed": self.failed,
        }

    def notify(self, wallet_id: str, event: dict) -> None:
        target = self._target
        if target is None or (target.wallet_id is not None and target.wallet_id != wallet_id):
            return
        body = json.dumps(event, separators=(",", ":")).encode()
        self._pool().submit(self._deliver, target, "msg_" + secrets.token_hex(12), body)

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="webhook")
            return self._executor

    def _deliver(self, target: WebhookTarget, message_id: str, body: bytes) -> None:
        for attempt in range(1, self._attempts + 1):
            timestamp = int(time.time())  # real time: receivers reject timestamps 5 min off
            headers = {
                "content-type": "application/json",
                "svix-id": message_id,
                "svix-timestamp": str(timestamp),
                "svix-signature": sign(target.key, message_id, timestamp, body),
            }
            try:
                response = requests.post(target.url, data=body, headers=headers, timeout=self._timeout)
            except requests.RequestException as exc:
                failure = {"attempt": attempt, "error_type": type(exc).__name__}
                log.warning("webhook_attempt_failed", extra=failure)
            else:
                if 200 <= response.status_code < 300:
                    with self._lock:
                        self.delivered += 1
                    return
                failure = {"attempt": attempt, "status": response.status_code}
                log.warning("webhook_attempt_failed", extra=failure)
            if attempt < self._attempts:
                time.sleep(self._backoff * attempt)
        with self._lock:
            self.failed += 1

    def shutdown(self) -> None:
        with self._lock:
            if self._executor is not None:
                self._executor.shutdown(wait=False, cancel_futures=True)
                self._executor = None
