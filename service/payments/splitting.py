"""How a sale's sats are divided into outgoing payments (legs).

Pure functions, exact arithmetic: the legs of a sale always add up to the invoice, to the sat.
The tip is divided by the largest-remainder method over the recipients' weights (``share``),
ties going to the recipient listed first. Blink refuses 0-sat invoices, so a recipient whose
part rounds to 0 sats is dropped and the whole tip is divided again among the others.
"""

from collections.abc import Sequence
from fractions import Fraction

from service.domain.model import LegKind, PlannedLeg, TipRecipient


def split_tip(tip_sats: int, recipients: Sequence[TipRecipient]) -> list[tuple[TipRecipient, int]]:
    """Divide ``tip_sats`` among ``recipients`` by weight; every part ≥ 1 sat, sum exactly ``tip_sats``.

    Recipients whose part would round to 0 sats are left out of the result. The order of the
    result is the order of ``recipients``.
    """
    if tip_sats < 0:
        raise ValueError("tip_sats must not be negative")
    if any(recipient.share <= 0 for recipient in recipients):
        raise ValueError("every tip recipient needs a positive share")
    if tip_sats == 0:
        return []
    if not recipients:
        raise ValueError("a tip needs at least one recipient")

    remaining = list(recipients)
    while True:
        parts = _largest_remainder(tip_sats, [recipient.share for recipient in remaining])
        if all(part > 0 for part in parts):
            return list(zip(remaining, parts, strict=True))
        # At least one part is positive (they sum to tip_sats > 0), so this always shrinks
        # the list and never empties it.
        remaining = [recipient for recipient, part in zip(remaining, parts, strict=True) if part > 0]


def plan_legs(
    merchant_wallet_id: str,
    base_sats: int,
    tip_sats: int,
    recipients: Sequence[TipRecipient],
) -> tuple[PlannedLeg, ...]:
    """Every payment a sale makes: the base to the merchant (if any), then one leg per tipped recipient.

    Positions run 0..n in that order, which is also the order the forwarder pays them in.
    """
    if base_sats < 0:
        raise ValueError("base_sats must not be negative")
    legs: list[PlannedLeg] = []
    if base_sats > 0:
        legs.append(PlannedLeg(kind=LegKind.BASE, recipient=merchant_wallet_id, sats=base_sats, position=0))
    for recipient, sats in split_tip(tip_sats, recipients):
        legs.append(PlannedLeg(kind=LegKind.TIP, recipient=recipient.username, sats=sats, position=len(legs)))
    return tuple(legs)


def _largest_remainder(total: int, weights: Sequence[Fraction]) -> list[int]:
    """Integer parts of ``total`` proportional to ``weights``, summing exactly to ``total``.

    Each gets the floor of its exact part; the sats left over go one each to the largest
    fractional remainders, earlier entries first among equal remainders.
    """
    weight_sum = sum(weights, Fraction(0))
    exact_parts = [Fraction(total) * weight / weight_sum for weight in weights]
    parts = [part.numerator // part.denominator for part in exact_parts]
    left_over = total - sum(parts)
    by_remainder = sorted(range(len(weights)), key=lambda i: (-(exact_parts[i] - parts[i]), i))
    for index in by_remainder[:left_over]:
        parts[index] += 1
    return parts
