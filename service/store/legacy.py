"""Read-only reader of the original POS's .tip-store.json: the one parser of that format.

The file maps payment hash -> {baseAmount, tipAmount, tipPercent, tipRecipient |
tipRecipients[{username, share}], userApiKey, userWalletId, displayCurrency,
baseAmountDisplay, tipAmountDisplay, memo?, timestamp (ms)}; numbers may be strings.
Both the store's last read fallback (LegacyFileStore) and the migration tool (migrate/) turn
entries into splits with record_from_entry, so a record means the same thing to both.
This module never writes the file. The plaintext key it holds is handed to the store (or
the migration writer) only, which keeps its fingerprint and nothing else.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path
from typing import Any

from service.domain.model import Split, SplitStatus, TipRecipient, parse_share
from service.domain.normalize import normalize_username

log = logging.getLogger(__name__)

# The original invoices lived 24 h (Blink's default BTC invoice expiry).
LEGACY_INVOICE_LIFETIME = timedelta(hours=24)
LEGACY_ENVIRONMENT = "legacy"

_PAYMENT_HASH = re.compile(r"[0-9a-f]{64}")
# Bounds that keep a value inside its column (and the sats inside what can exist): a record
# past them is refused here rather than failing, or being rounded, in Postgres.
_MAX_SATS = 21_000_000 * 100_000_000
_MAX_TIP_PERCENT = Decimal("1000")
_TIP_PERCENT_PLACES = Decimal("0.0001")  # payment_splits.tip_percent NUMERIC(9, 4)
_DISPLAY_PLACES = Decimal("0.00000001")  # *_amount_display NUMERIC(20, 8)
_MAX_DISPLAY = Decimal(10) ** 12
# tipAmount and baseAmount * tipPercent may differ by the fiat->sats rounding of the old POS;
# beyond this they describe different sales.
_TIP_PERCENT_TOLERANCE_SATS = 2
_TIP_PERCENT_TOLERANCE_RATIO = Decimal("0.1")


@dataclass(frozen=True)
class LegacyRecord:
    split: Split  # id None, no legs, merchant_key_fingerprint empty
    api_key: str = field(repr=False)


class LegacyRecordInvalid(ValueError):
    """A record of the file cannot be read as a split (reason only, never its values).

    code is a stable snake_case class of the problem (bad_hash, bad_amount,
    inconsistent_amounts, missing_credentials, bad_username, ...), for reports.
    """

    def __init__(self, reason: str, code: str = "invalid_record") -> None:
        super().__init__(reason)
        self.code = code


def _sats(value: Any, name: str, *, required: bool = False) -> int:
    if value is None or value == "":
        if required:
            raise LegacyRecordInvalid(f"{name} is missing", "bad_amount")
        return 0
    if isinstance(value, bool):
        raise LegacyRecordInvalid(f"{name} is not a number", "bad_amount")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise LegacyRecordInvalid(f"{name} is not a number", "bad_amount") from None
    if not amount.is_finite() or amount != amount.to_integral_value() or amount < 0:
        raise LegacyRecordInvalid(f"{name} is not a whole, non-negative number of sats", "bad_amount")
    if amount > _MAX_SATS:
        raise LegacyRecordInvalid(f"{name} is more sats than exist", "bad_amount")
    return int(amount)


def _optional_decimal(value: Any, name: str, places: Decimal, limit: Decimal) -> Decimal | None:
    """A non-negative decimal rounded to its column's places, or None when absent or unreadable."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    if not number.is_finite():
        return None
    if number < 0 or number >= limit:
        raise LegacyRecordInvalid(f"{name} is negative or out of range", "bad_amount")
    return number.quantize(places)


def _username(raw: Any) -> str:
    username = normalize_username(raw) if isinstance(raw, str) else None
    if username is None:
        raise LegacyRecordInvalid("a tip recipient is not a valid Blink username", "bad_username")
    return username


def _recipients(entry: dict[str, Any]) -> tuple[TipRecipient, ...]:
    many = entry.get("tipRecipients")
    if isinstance(many, list) and many:
        recipients = []
        for item in many:
            if not isinstance(item, dict) or not item.get("username"):
                raise LegacyRecordInvalid("tipRecipients entry without a username", "bad_username")
            username = _username(item["username"])
            try:
                share = parse_share(item.get("share", 1))
            except (ValueError, ZeroDivisionError):
                raise LegacyRecordInvalid("a tip recipient's share is unreadable", "bad_share") from None
            if share <= 0:
                raise LegacyRecordInvalid("a tip recipient's share is not positive", "bad_share")
            recipients.append(TipRecipient(username, share))
        if len({r.username for r in recipients}) != len(recipients):
            raise LegacyRecordInvalid("a tip recipient is listed twice", "bad_username")
        return tuple(recipients)
    single = entry.get("tipRecipient")
    if single:
        return (TipRecipient(_username(single), Fraction(1)),)
    return ()


def _check_consistency(base: int, tip: int, tip_percent: Decimal | None, recipients: tuple) -> None:
    if base + tip == 0:
        raise LegacyRecordInvalid("the invoice amount is 0 sats", "inconsistent_amounts")
    if tip > 0 and not recipients:
        raise LegacyRecordInvalid("tipAmount is positive but names no recipient", "inconsistent_amounts")
    if tip_percent:
        expected = Decimal(base) * tip_percent / 100
        allowed = max(Decimal(_TIP_PERCENT_TOLERANCE_SATS), expected * _TIP_PERCENT_TOLERANCE_RATIO)
        if abs(Decimal(tip) - expected) > allowed:
            raise LegacyRecordInvalid("tipAmount disagrees with tipPercent", "inconsistent_amounts")


def _created_at(value: Any) -> datetime:
    try:
        millis = int(Decimal(str(value).strip()))
        return datetime.fromtimestamp(millis / 1000, tz=UTC)
    except (InvalidOperation, ValueError, OverflowError, OSError):
        raise LegacyRecordInvalid("timestamp is not epoch milliseconds", "bad_timestamp") from None


def _present_text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _memo(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise LegacyRecordInvalid("memo is not text", "bad_memo")
    if "\x00" in value:  # Postgres text cannot hold it
        raise LegacyRecordInvalid("memo contains a NUL character", "bad_memo")
    return value


def record_from_entry(
    payment_hash: str, entry: Any, lifetime: timedelta = LEGACY_INVOICE_LIFETIME
) -> LegacyRecord:
    """Converts one file entry; raises LegacyRecordInvalid when it cannot be a split.

    The invoice is taken to expire `lifetime` after the record's timestamp; the split comes
    back pending (the caller decides what an expired one becomes).
    """
    if not isinstance(payment_hash, str) or not _PAYMENT_HASH.fullmatch(payment_hash):
        raise LegacyRecordInvalid("the payment hash is not 64 lowercase hex digits", "bad_hash")
    if not isinstance(entry, dict):
        raise LegacyRecordInvalid("entry is not an object", "not_an_object")
    api_key = entry.get("userApiKey")
    wallet_id = entry.get("userWalletId")
    if not _present_text(api_key) or not _present_text(wallet_id):
        raise LegacyRecordInvalid("entry lacks userApiKey or userWalletId", "missing_credentials")
    base = _sats(entry.get("baseAmount"), "baseAmount", required=True)
    tip = _sats(entry.get("tipAmount"), "tipAmount")
    tip_percent = _optional_decimal(
        entry.get("tipPercent"), "tipPercent", _TIP_PERCENT_PLACES, _MAX_TIP_PERCENT
    )
    recipients = _recipients(entry)
    _check_consistency(base, tip, tip_percent, recipients)
    created = _created_at(entry.get("timestamp"))
    split = Split(
        id=None,
        payment_hash=payment_hash,
        payment_request="",
        invoice_sats=base + tip,
        base_sats=base,
        tip_sats=tip,
        tip_percent=tip_percent,
        merchant_wallet_id=wallet_id.strip(),
        merchant_key_fingerprint="",
        tip_recipients=recipients,
        display_currency=str(entry.get("displayCurrency") or "BTC"),
        base_amount_display=_optional_decimal(
            entry.get("baseAmountDisplay"), "baseAmountDisplay", _DISPLAY_PLACES, _MAX_DISPLAY
        ),
        tip_amount_display=_optional_decimal(
            entry.get("tipAmountDisplay"), "tipAmountDisplay", _DISPLAY_PLACES, _MAX_DISPLAY
        ),
        memo=_memo(entry.get("memo")),
        environment=LEGACY_ENVIRONMENT,
        status=SplitStatus.PENDING,
        created_at=created,
        expires_at=created + lifetime,
        paid_at=None,
        processed_at=None,
        last_error=None,
        claimed_by=None,
        claimed_at=None,
    )
    return LegacyRecord(split=split, api_key=api_key.strip())


class LegacyFileStore:
    """Reads the legacy file, re-parsing it only when its modification time changes."""

    def __init__(self, path: str | Path, lifetime: timedelta = LEGACY_INVOICE_LIFETIME) -> None:
        self.path = Path(path)
        self.lifetime = lifetime
        self._lock = threading.Lock()
        self._loaded_mtime: float | None = None
        self._entries: dict[str, Any] = {}

    def get(self, payment_hash: str) -> LegacyRecord | None:
        entry = self._snapshot().get(payment_hash)
        if entry is None:
            return None
        try:
            return record_from_entry(payment_hash, entry, self.lifetime)
        except LegacyRecordInvalid as exc:
            log.warning(
                "legacy_record_invalid",
                extra={"payment_hash": payment_hash, "reason": str(exc), "code": exc.code},
            )
            return None

    def _snapshot(self) -> dict[str, Any]:
        try:
            mtime = self.path.stat().st_mtime
        except OSError:
            return {}
        with self._lock:
            if mtime != self._loaded_mtime:
                try:
                    data = json.loads(self.path.read_text(encoding="utf-8"))
                except (OSError, ValueError) as exc:
                    log.warning("legacy_file_unreadable", extra={"error_type": type(exc).__name__})
                    return self._entries
                self._entries = data if isinstance(data, dict) else {}
                self._loaded_mtime = mtime
            return self._entries
