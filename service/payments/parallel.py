"""Runs one call per item side by side on a small thread pool bounded per call site.

Blink round trips dominate a forward, so legs waiting on the network in parallel cut the
cashier's wait to about one leg's worth. Every call finishes before the caller moves on, even
when one of them raises: no leg is left running behind a lease its holder already gave back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def run_each(call: Callable[[T], R], items: Sequence[T], max_workers: int) -> list[R]:
    """[call(item) for item in items], concurrently; re-raises the first exception once all ended."""
    if len(items) <= 1 or max_workers <= 1:
        # No pool for a single item: the common one-leg sale pays no thread start-up.
        return [call(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(max_workers, len(items)), thread_name_prefix="leg") as pool:
        futures = [pool.submit(call, item) for item in items]
    for future in futures:
        error = future.exception()
        if error is not None:
            raise error
    return [future.result() for future in futures]
