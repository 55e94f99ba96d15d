"""Mapping between the model dataclasses, Postgres rows and the cached JSON document."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

from service.domain.model import Leg, LegKind, LegStatus, Payout, Split, SplitStatus, TipRecipient

# Bump when the cached document changes shape: older documents are then treated as misses.
# 2: no merchant key ciphertext any more (format 1 documents are misses and are deleted).
# 3: legs carry payout, received_sats, fee_sats; splits merchant_payout_address.
CACHE_FORMAT = 3


def _timestamp(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


def _decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, Decimal):
        return value
    return Decimal(str(value))


def leg_from_mapping(row: dict[str, Any]) -> Leg:
    """A Leg from a row, or from its to_jsonb() form (timestamps as ISO strings)."""
    return Leg(
        id=int(row["id"]),
        split_id=int(row["split_id"]),
        kind=LegKind(row["kind"]),
        recipient=row["recipient"],
        recipient_wallet_id=row.get("recipient_wallet_id"),
        sats=int(row["sats"]),
        position=int(row["position"]),
        status=LegStatus(row["status"]),
        payment_request=row.get("payment_request"),
        payment_hash=row.get("payment_hash"),
        attempts=int(row.get("attempts", 0)),
        last_error=row.get("last_error"),
        next_attempt_at=_timestamp(row.get("next_attempt_at")),
        paid_at=_timestamp(row.get("paid_at")),
        payout=Payout(row.get("payout") or Payout.BLINK),
        received_sats=_int_or_none(row.get("received_sats")),
        fee_sats=_int_or_none(row.get("fee_sats")),
    )


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def split_from_mapping(row: dict[str, Any]) -> Split:
    """A Split from a select_split-shaped row or from the cached document."""
    return Split(
        id=None if row.get("id") is None else int(row["id"]),
        payment_hash=row["payment_hash"],
        payment_request=row["payment_request"],
        invoice_sats=int(row["invoice_sats"]),
        base_sats=int(row["base_sats"]),
        tip_sats=int(row["tip_sats"]),
        tip_percent=_decimal(row.get("tip_percent")),
        merchant_wallet_id=row.get("merchant_wallet_id"),
        merchant_key_fingerprint=row.get("merchant_key_fingerprint"),
        tip_recipients=tuple(TipRecipient.from_json(r) for r in row.get("tip_recipients") or ()),
        display_currency=row["display_currency"],
        base_amount_display=_decimal(row.get("base_amount_display")),
        tip_amount_display=_decimal(row.get("tip_amount_display")),
        memo=row.get("memo"),
        environment=row["environment"],
        status=SplitStatus(row["status"]),
        created_at=_timestamp(row["created_at"]),
        expires_at=_timestamp(row["expires_at"]),
        paid_at=_timestamp(row.get("paid_at")),
        processed_at=_timestamp(row.get("processed_at")),
        last_error=row.get("last_error"),
        claimed_by=row.get("claimed_by"),
        claimed_at=_timestamp(row.get("claimed_at")),
        legs=tuple(leg_from_mapping(leg) for leg in row.get("legs") or ()),
        client_total_sats=row.get("client_total_sats"),
        merchant_payout_address=row.get("merchant_payout_address"),
    )


def _json_text(value: Any) -> str:
    # Timestamps as ISO text; Decimal and Fraction (a share) as their exact string.
    return value.isoformat() if isinstance(value, datetime) else str(value)


def split_to_document(split: Split) -> str:
    """The JSON stored at tip:{hash}: no merchant key in any form, only its fingerprint."""
    document = {
        "format": CACHE_FORMAT,
        **vars(split),
        "tip_recipients": [r.to_json() for r in split.tip_recipients],
        "legs": [vars(leg) for leg in split.legs],
    }
    return json.dumps(document, separators=(",", ":"), default=_json_text)


def split_from_document(raw: bytes | str) -> Split | None:
    """The Split in a cached document; None for a document of another format."""
    document = json.loads(raw)
    if not isinstance(document, dict) or document.get("format") != CACHE_FORMAT:
        return None
    return split_from_mapping(document)
