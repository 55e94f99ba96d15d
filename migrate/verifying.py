"""Reading every migrated record back through the store and comparing it with the file.

Both paths of the store are checked: get() (the Redis hot copy when there is one) and
get_fresh() (Postgres). Only what the migration wrote and nothing later changes is compared
(the status may legitimately move on: a migrated split gets paid and forwarded). Mismatches
name the fields, never their values (one of them is the merchant key's fingerprint).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from service.domain.model import Leg, PlannedLeg, Split
from service.payments.splitting import plan_legs
from service.store.errors import StoreUnavailable
from service.store.legacy import LegacyRecord
from service.store.splits import SplitStore

_COMPARED_FIELDS = (
    "invoice_sats",
    "base_sats",
    "tip_sats",
    "tip_percent",
    "merchant_wallet_id",
    "tip_recipients",
    "display_currency",
    "base_amount_display",
    "tip_amount_display",
    "memo",
    "created_at",
    "expires_at",
)


@dataclass(frozen=True)
class Mismatch:
    payment_hash: str
    reason: str


def verify(store: SplitStore, records: Iterable[LegacyRecord]) -> tuple[int, list[Mismatch]]:
    """(how many records were checked, the mismatches found)."""
    checked = 0
    mismatches: list[Mismatch] = []
    for record in records:
        checked += 1
        problem = _check(store, record)
        if problem:
            mismatches.append(Mismatch(record.split.payment_hash, problem))
    return checked, mismatches


def _check(store: SplitStore, record: LegacyRecord) -> str | None:
    payment_hash = record.split.payment_hash
    try:
        reads = {"store": store.get(payment_hash), "postgres": store.get_fresh(payment_hash)}
    except StoreUnavailable:
        return "Postgres is unavailable"
    problems = []
    for path, stored in reads.items():
        if stored is None or stored.id is None:  # id None: only the legacy file has it
            problems.append(f"{path}: not found")
            continue
        differing = _differing_fields(store, record, stored)
        if differing:
            problems.append(f"{path}: " + ", ".join(differing) + " differ")
    return "; ".join(problems) or None


def _differing_fields(store: SplitStore, record: LegacyRecord, stored: Split) -> list[str]:
    expected = record.split
    differing = [name for name in _COMPARED_FIELDS if getattr(stored, name) != getattr(expected, name)]
    if not store.fingerprints.matches(record.api_key, stored.merchant_key_fingerprint):
        differing.append("merchant_key_fingerprint")
    planned = plan_legs(
        expected.merchant_wallet_id, expected.base_sats, expected.tip_sats, expected.tip_recipients
    )
    if _shapes(stored.legs) != _shapes(planned):
        differing.append("legs")
    return differing


def _shapes(legs: Iterable[Leg | PlannedLeg]) -> list[tuple]:
    return sorted((leg.position, leg.kind.value, leg.recipient, leg.sats) for leg in legs)
