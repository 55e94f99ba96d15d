"""JSON shapes of the POS endpoints' answers (DESIGN §4). Never an API key or its ciphertext."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from service.config import Config
from service.domain.model import LegKind, LegStatus, Split
from service.payments.forwarding import ForwardOutcome, leg_summaries
from service.payments.inputs import InvoiceRequest


def invoice(split: Split, request: InvoiceRequest, config: Config) -> dict[str, Any]:
    tip_legs = _tip_legs(split)
    return {
        "paymentRequest": split.payment_request,
        "paymentHash": split.payment_hash,
        "satoshis": split.invoice_sats,
        "amount": split.invoice_sats,
        "currency": request.currency,
        "memo": split.memo or "",
        "walletId": config.blinkpos_btc_wallet_id,
        "userWalletId": split.merchant_wallet_id,
        "hasTip": split.has_tip,
        "tipAmount": split.tip_sats,
        "tipRecipient": tip_legs[0]["username"] if tip_legs else None,
        "tipRecipients": tip_legs,
        "expiresAt": _iso(split.expires_at),
    }


def forward_result(outcome: ForwardOutcome) -> dict[str, Any]:
    split = outcome.split
    base_leg = next((leg for leg in split.legs if leg.kind == LegKind.BASE), None)
    tip_legs = _tip_legs(split)
    message = (
        "Payment already forwarded"
        if outcome.already_processed
        else "Payment forwarded with tips"
        if split.has_tip
        else "Payment forwarded"
    )
    return {
        "success": True,
        "message": message,
        "details": {
            "paymentHash": split.payment_hash,
            "totalAmount": split.invoice_sats,
            "forwardedAmount": split.base_sats,
            "userWalletId": split.merchant_wallet_id,
            "paymentStatus": "SUCCESS",
            "invoiceHash": base_leg.payment_hash if base_leg else None,
            "tipResult": {
                "success": all(leg["status"] == LegStatus.SUCCEEDED for leg in tip_legs),
                "totalTipAmount": split.tip_sats,
                "recipients": tip_legs,
            }
            if split.has_tip
            else None,
            "tipSplitting": {
                "recipientCount": len(tip_legs),
                "amounts": [leg["sats"] for leg in tip_legs],
            }
            if split.has_tip
            else None,
            "alreadyProcessed": outcome.already_processed,
            "processedAt": _iso(split.processed_at),
        },
    }


def payment_status(split: Split) -> dict[str, Any]:
    return {
        "paymentHash": split.payment_hash,
        "status": str(split.status),
        "invoiceSats": split.invoice_sats,
        "baseSats": split.base_sats,
        "tipSats": split.tip_sats,
        "tipPercent": _number(split.tip_percent),
        "merchantWalletId": split.merchant_wallet_id,
        "displayCurrency": split.display_currency,
        "memo": split.memo,
        "createdAt": _iso(split.created_at),
        "expiresAt": _iso(split.expires_at),
        "paidAt": _iso(split.paid_at),
        "processedAt": _iso(split.processed_at),
        "lastError": split.last_error,
        "legs": leg_summaries(split),
    }


def _tip_legs(split: Split) -> list[dict[str, Any]]:
    shares = {recipient.username: recipient.share for recipient in split.tip_recipients}
    return [
        {
            "username": leg.recipient,
            "share": _number(shares.get(leg.recipient)),
            "sats": leg.sats,
            "status": str(leg.status),
            "paymentHash": leg.payment_hash,
        }
        for leg in sorted(split.legs, key=lambda leg: leg.position)
        if leg.kind == LegKind.TIP
    ]


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _number(value: Any) -> Any:
    """Shares and percents as JSON numbers: integers stay integers, the rest become floats."""
    if value is None:
        return None
    if getattr(value, "denominator", None) == 1:
        return int(value)
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    return float(value)
