"""What Blink last answered for the POS key, for /api/health's `blinkConfig`.

The key is checked once when the app starts, in the background, and again in the background when
the answer has grown older than `recheck_seconds` and someone asks. A health request never waits
for Blink: Blink being down makes the answer `unreachable`, not the service unhealthy.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from service.blink.client import BlinkClient
from service.blink.errors import BlinkError, BlinkUnauthorized, BlinkUnavailable

log = logging.getLogger(__name__)

UNCHECKED = "unchecked"  # no answer yet (the first check is under way)
VALID = "valid"  # the key is accepted and owns the POS wallet
WRONG_WALLET = "wallet_not_owned"  # accepted, but BLINKPOS_BTC_WALLET_ID is not one of its wallets
REFUSED = "refused"  # Blink refused the key
UNREACHABLE = "unreachable"  # Blink did not answer (network, timeout, 5xx)
ERROR = "error"  # Blink answered something else
POS_KEY_ANSWERS = (UNCHECKED, VALID, WRONG_WALLET, REFUSED, UNREACHABLE, ERROR)


@dataclass(frozen=True)
class PosKeyAnswer:
    status: str
    checked_at: datetime | None = None


class PosKeyCheck:
    def __init__(
        self,
        blink: BlinkClient,
        api_key: str,
        wallet_id: str,
        recheck_seconds: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._blink = blink
        self._api_key = api_key
        self._wallet_id = wallet_id
        self._recheck_seconds = recheck_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._answer = PosKeyAnswer(UNCHECKED)
        self._answered_at: float | None = None
        self._running = False
        self._thread: threading.Thread | None = None
        self._closed = False

    def answer(self) -> PosKeyAnswer:
        """The last answer; starts a background re-check when it is stale (never waits for it)."""
        with self._lock:
            stale = self._answered_at is None or self._clock() - self._answered_at > self._recheck_seconds
        if stale:
            self.start()
        return self._answer

    def start(self) -> None:
        with self._lock:
            if self._running or self._closed:
                return
            self._running = True
            self._thread = threading.Thread(target=self.check, name="pos-key-check", daemon=True)
            self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        """No new checks; wait (bounded) for one under way, so it never logs into a closed app."""
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def check(self) -> PosKeyAnswer:
        """Ask Blink now (blocking): the wallets of the POS key."""
        try:
            owned = {wallet.id for wallet in self._blink.wallets(self._api_key)}
            status = VALID if self._wallet_id in owned else WRONG_WALLET
        except BlinkUnauthorized:
            status = REFUSED
        except BlinkUnavailable:
            status = UNREACHABLE
        except BlinkError:
            status = ERROR
        answer = PosKeyAnswer(status, datetime.now(UTC))
        with self._lock:
            self._answer, self._answered_at, self._running = answer, self._clock(), False
        if status != VALID:
            log.warning("pos_key_check_failed", extra={"answer": status})
        return answer
