"""The canonical forms of what clients send: a Blink username and a payment hash.

Request parsing, the payment rules, the legacy file reader and the reports all use these.
"""

import re

# Blink's Username scalar: 3-50 of [0-9a-z_], case-insensitive, and not shaped like an
# on-chain address or a BOLT11 invoice (Blink enforces this server-side only).
_USERNAME_PATTERN = re.compile(r"[0-9a-z_]{3,50}")
_FORBIDDEN_USERNAME_PREFIXES = ("1", "3", "bc1", "lnbc1")
# The old POS page let a merchant type a Lightning address; the Blink one names the same user.
_BLINK_ADDRESS_SUFFIX = "@blink.sv"
_HEX_DIGITS = frozenset("0123456789abcdef")


def normalize_username(raw: str) -> str | None:
    """The canonical (lowercase) Blink username for ``raw``, or None if Blink would refuse it.

    Surrounding spaces and a trailing ``@blink.sv`` are tolerated.
    """
    username = raw.strip().lower()
    username = username.removesuffix(_BLINK_ADDRESS_SUFFIX)
    if not _USERNAME_PATTERN.fullmatch(username) or username.startswith(_FORBIDDEN_USERNAME_PREFIXES):
        return None
    return username


def normalize_payment_hash(raw: str) -> str | None:
    """The canonical (lowercase) payment hash for ``raw``, or None unless it is 64 hex digits.

    Surrounding spaces are tolerated.
    """
    payment_hash = raw.strip().lower()
    if len(payment_hash) != 64 or not set(payment_hash) <= _HEX_DIGITS:
        return None
    return payment_hash
