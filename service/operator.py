"""The operator commands' logic: `splits failed` (what needs a human) and `splits retry <hash>`.

The store finds and resets the splits (SplitStore.needing_attention, reset_for_retry); this
module turns a refusal into RetryRefused and prints the attention list.
The CLI (service/cli.py) only parses arguments and prints what these functions return.
"""

from __future__ import annotations

import json
from typing import Any

from service.domain.model import Split
from service.store.splits import SplitStore

_ERROR_COLUMN_CHARS = 60


class RetryRefused(Exception):
    """The split is unknown, or not in a state an operator retry applies to."""


def reset_for_retry(store: SplitStore, payment_hash: str, lease_seconds: float) -> int:
    """Puts the split back to forwarding with its failed legs' attempts reset; returns legs reset.

    Raises RetryRefused for an unknown split, or one that is not failed/stuck.
    """
    legs = store.reset_for_retry(payment_hash, lease_seconds)
    if legs is None:
        raise RetryRefused(f"split {payment_hash} is unknown, or not failed or stuck (nothing to retry)")
    return legs


def as_json(splits: list[Split]) -> str:
    """The attention list for scripts: splits with their legs, no secrets."""
    return json.dumps([_split_document(split) for split in splits], indent=2, default=str)


def _split_document(split: Split) -> dict[str, Any]:
    return {
        "paymentHash": split.payment_hash,
        "status": str(split.status),
        "invoiceSats": split.invoice_sats,
        "baseSats": split.base_sats,
        "tipSats": split.tip_sats,
        "merchantWalletId": split.merchant_wallet_id,
        "paidAt": split.paid_at,
        "claimedBy": split.claimed_by,
        "lastError": split.last_error,
        "legs": [
            {
                "kind": str(leg.kind),
                "recipient": leg.recipient,
                "sats": leg.sats,
                "status": str(leg.status),
                "attempts": leg.attempts,
                "nextAttemptAt": leg.next_attempt_at,
                "lastError": leg.last_error,
            }
            for leg in sorted(split.legs, key=lambda leg: leg.position)
        ],
    }


def as_table(splits: list[Split]) -> str:
    """A readable table: one line per split, its legs indented beneath."""
    if not splits:
        return "no splits need attention"
    lines = [f"{'payment hash':<64}  {'status':<10}  {'sats':>9}  {'paid at':<19}  last error"]
    for split in splits:
        paid = split.paid_at.strftime("%Y-%m-%d %H:%M:%S") if split.paid_at else "-"
        lines.append(
            f"{split.payment_hash:<64}  {str(split.status):<10}  {split.invoice_sats:>9}  {paid:<19}  "
            f"{_short(split.last_error)}"
        )
        for leg in sorted(split.legs, key=lambda leg: leg.position):
            lines.append(
                f"    {str(leg.kind):<4} {leg.recipient[:36]:<36} {leg.sats:>9} sats  {str(leg.status):<9} "
                f"attempts={leg.attempts:<3} {_short(leg.last_error)}"
            )
    return "\n".join(lines)


def _short(text: str | None) -> str:
    if not text:
        return "-"
    text = " ".join(text.split())
    return text if len(text) <= _ERROR_COLUMN_CHARS else text[: _ERROR_COLUMN_CHARS - 1] + "…"
