"""The fee reserve of a payout outside Blink (DESIGN 8: the POS wallet never pays out more for a
sale than the sale brought in).

A leg of N sats asks the recipient's server for an invoice of N - reserve sats; the routing fee
Blink probes must fit in the reserve, or the leg waits. reserve = max(minimum, ceil(N x percent)),
never more than the leg itself. Integer sats throughout; the percentage is a Decimal.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal


@dataclass(frozen=True)
class FeePolicy:
    percent: Decimal = Decimal("1")
    min_sats: int = 3

    def fee_reserve(self, leg_sats: int) -> int:
        """Sats of a ``leg_sats`` leg kept back for the routing fee."""
        if leg_sats <= 0:
            return 0
        share = (Decimal(leg_sats) * self.percent / 100).to_integral_value(rounding=ROUND_CEILING)
        return min(leg_sats, max(self.min_sats, int(share)))

    def invoice_sats_for_leg(self, leg_sats: int) -> int:
        """What the recipient's invoice is for: the leg minus its reserve (0: nothing payable)."""
        return leg_sats - self.fee_reserve(leg_sats)

    def fee_fits(self, leg_sats: int, invoice_sats: int, fee_sats: int) -> bool:
        """Paying ``invoice_sats`` plus ``fee_sats`` stays within the leg."""
        return fee_sats >= 0 and invoice_sats + fee_sats <= leg_sats
