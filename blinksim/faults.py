"""Fault injection: make chosen GraphQL operations fail, hang, answer PENDING (settling at once or later)
or slow down.

Semantics (also in README.md): a fault matches a request when its `operation` is one of the
request's root field names or "*"; each matching request consumes one of its `count` hits
(None: until cleared).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

# A payment held PENDING that settles later to this outcome: after `delayMs`, or on a control call.
HOLD_OUTCOMES = {"pending_then_success": "SUCCESS", "pending_then_failure": "FAILURE"}
MODES = ("error", "timeout", "pending", "delay", *HOLD_OUTCOMES)
DEFAULT_DELAY_MS = {
    "error": 0,
    "timeout": 30_000,
    "pending": 1_000,
    "delay": 1_000,
    "pending_then_success": None,
    "pending_then_failure": None,
}


class FaultSpecError(ValueError):
    """A malformed fault request from the control API."""


@dataclass
class Fault:
    operation: str
    mode: str
    remaining: int | None
    delay_ms: int | None
    http_status: int | None

    def matches(self, operations: frozenset[str]) -> bool:
        return self.operation == "*" or self.operation in operations

    def to_json(self) -> dict:
        return {
            "operation": self.operation,
            "mode": self.mode,
            "count": self.remaining,
            "delayMs": self.delay_ms,
            "httpStatus": self.http_status,
        }


def _optional_int(spec: dict, key: str, low: int, high: int) -> int | None:
    value = spec.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise FaultSpecError(f"{key} must be an integer in [{low}, {high}]")
    return value


def parse_fault(spec: object) -> Fault:
    if not isinstance(spec, dict):
        raise FaultSpecError("a JSON object is required")
    operation, mode = spec.get("operation"), spec.get("mode")
    if not isinstance(operation, str) or not operation:
        raise FaultSpecError("operation must be a GraphQL field name or '*'")
    if mode not in MODES:
        raise FaultSpecError(f"mode must be one of {', '.join(MODES)}")
    count = _optional_int(spec, "count", 1, 10**9)
    delay_ms = _optional_int(spec, "delayMs", 0, 600_000)
    http_status = _optional_int(spec, "httpStatus", 400, 599)
    return Fault(
        operation=operation,
        mode=mode,
        remaining=count,
        delay_ms=DEFAULT_DELAY_MS[mode] if delay_ms is None else delay_ms,
        http_status=http_status,
    )


class FaultBook:
    """The active faults; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def active(self) -> list[dict]:
        with self._lock:
            return [fault.to_json() for fault in self._faults]

    def take(self, operations: frozenset[str]) -> list[Fault]:
        """The faults hitting a request for `operations`, each hit consumed."""
        if not self._faults:  # the common, fault-free path takes no lock
            return []
        hits: list[Fault] = []
        with self._lock:
            for fault in self._faults:
                if fault.matches(operations):
                    hits.append(fault)
                    if fault.remaining is not None:
                        fault.remaining -= 1
            self._faults = [f for f in self._faults if f.remaining is None or f.remaining > 0]
        return hits
