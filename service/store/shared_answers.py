"""One upstream answer shared by every caller for a moment (issue 13 §3: floods reach Blink).

Anyone who saw a QR code may call forward-with-tips on its hash as often as they like; each
call asks Blink whether the invoice is paid, on the POS account's quota. Concurrent and
repeated questions about one subject within SHARED_ANSWER_TTL_MS share one answer: the first
asker takes a short Redis lock and asks, the others wait for its answer (or ask themselves
when it does not come in time). Without Redis every caller asks, as before.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import redis

from service.store import keys

log = logging.getLogger(__name__)

_POLL_SECONDS = 0.05


class SharedAnswers:
    def __init__(
        self,
        client: redis.Redis,
        *,
        ttl_ms: int = keys.SHARED_ANSWER_TTL_MS,
        wait_seconds: float = keys.SHARED_ANSWER_LOCK_MS / 1000,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = client
        self._ttl_ms = ttl_ms
        self._wait = wait_seconds
        self._sleep = sleep
        self._clock = clock

    def get(self, question: str, subject: str, ask: Callable[[], str]) -> str:
        """The shared answer to question about subject, asking (ask()) only when none is fresh.

        ask's exceptions propagate and are not shared: the next caller asks again.
        """
        answer_key = keys.shared_answer(question, subject)
        lock_key = keys.shared_answer_lock(question, subject)
        deadline = self._clock() + self._wait
        try:
            while True:
                cached = self._redis.get(answer_key)
                if cached is not None:
                    return cached.decode()
                if self._redis.set(lock_key, "1", nx=True, px=keys.SHARED_ANSWER_LOCK_MS):
                    break
                if self._clock() >= deadline:
                    return ask()  # the first asker is slow or gone: do not wait longer
                self._sleep(_POLL_SECONDS)
        except redis.RedisError as exc:
            log.warning("shared_answer_unavailable", extra={"error_type": type(exc).__name__})
            return ask()
        try:
            answer = ask()
        except BaseException:
            self._forget(lock_key)
            raise
        try:
            pipe = self._redis.pipeline(transaction=True)
            pipe.set(answer_key, answer, px=self._ttl_ms)
            pipe.delete(lock_key)
            pipe.execute()
        except redis.RedisError as exc:
            log.warning("shared_answer_unavailable", extra={"error_type": type(exc).__name__})
        return answer

    def _forget(self, lock_key: str) -> None:
        try:
            self._redis.delete(lock_key)
        except redis.RedisError:
            pass  # it expires by itself
