"""Reading and validating the legacy .tip-store.json.

The bytes are read once: the same bytes are parsed, backed up and never written back. Each
entry is validated by the one parser of the format, service.store.legacy.record_from_entry
(also the store's read-only fallback), so both read a record the same way.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from service.store.legacy import LegacyRecord, LegacyRecordInvalid, record_from_entry

_SHOWN_KEY_CHARS = 24


class SourceUnreadable(Exception):
    """The file cannot be read or is not a JSON object; the message says where and why."""


@dataclass(frozen=True)
class SourceFile:
    path: Path
    raw: bytes
    entries: dict[str, Any]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()


@dataclass(frozen=True)
class InvalidRecord:
    """A skipped record: its key as found (shortened when it is not a hash), and why."""

    key: str
    code: str
    reason: str


@dataclass(frozen=True)
class Validated:
    records: list[LegacyRecord]
    invalid: list[InvalidRecord]


def read_source(path: Path) -> SourceFile:
    """Reads and parses the file; SourceUnreadable names the line and column of bad JSON."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SourceUnreadable(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None
    try:
        text = raw.decode("utf-8-sig")  # a BOM some editors add is not an error
    except UnicodeDecodeError as exc:
        raise SourceUnreadable(f"{path} is not UTF-8 (byte offset {exc.start})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SourceUnreadable(
            f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    if not isinstance(data, dict):
        raise SourceUnreadable(f"{path} must hold a JSON object (payment hash -> record), not {_kind(data)}")
    return SourceFile(path=path, raw=raw, entries=data)


def validate(source: SourceFile, invoice_lifetime: timedelta) -> Validated:
    """Every entry as a LegacyRecord, or as an InvalidRecord with the reason (file order kept)."""
    records: list[LegacyRecord] = []
    invalid: list[InvalidRecord] = []
    for key, entry in source.entries.items():
        try:
            records.append(record_from_entry(key, entry, invoice_lifetime))
        except LegacyRecordInvalid as exc:
            invalid.append(InvalidRecord(key=_shown_key(key), code=exc.code, reason=str(exc)))
    return Validated(records=records, invalid=invalid)


def _shown_key(key: str) -> str:
    # A malformed key may be anything (even a pasted secret): show only its start.
    if len(key) <= 64:
        return key
    return key[:_SHOWN_KEY_CHARS] + "..."


def _kind(value: Any) -> str:
    return {list: "an array", str: "a string", type(None): "null", bool: "a boolean"}.get(
        type(value), "a number"
    )
