"""The sale's arithmetic: which part of the invoice is the merchant's base and which the tip.

The invoice total decides. The base is the client's ``baseAmount`` (or the total minus its
``tipAmount``); the tip is always total - base, so the parts add up to the invoice. The
client's tip is only cross-checked: a POS page that rounded differently may be 1 sat off.
"""

from __future__ import annotations

from service.domain.errors import InvalidBaseAmount, TipAmountMismatch

TIP_TOLERANCE_SATS = 1


def base_and_tip(invoice_sats: int, client_base: int | None, client_tip: int | None) -> tuple[int, int]:
    """(base, tip) of a sale of ``invoice_sats``; InvalidBaseAmount or TipAmountMismatch otherwise."""
    if client_base is not None:
        if client_base > invoice_sats:
            raise InvalidBaseAmount("baseAmount cannot be larger than amount")
        base = client_base
    elif client_tip is not None:
        if client_tip > invoice_sats:
            raise TipAmountMismatch("tipAmount cannot be larger than amount")
        base = invoice_sats - client_tip
    else:
        base = invoice_sats
    tip = invoice_sats - base
    if client_tip is not None and abs(client_tip - tip) > TIP_TOLERANCE_SATS:
        raise TipAmountMismatch(
            f"tipAmount differs by more than {TIP_TOLERANCE_SATS} sat from amount minus baseAmount"
        )
    return base, tip
