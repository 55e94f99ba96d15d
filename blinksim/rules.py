"""Blink's server-side rules for scalars the GraphQL schema cannot check."""

from __future__ import annotations

import re

MAX_MEMO_BYTES = 639  # what fits a BOLT11 description field (1023 five-bit groups)
DEFAULT_BTC_EXPIRY_MINUTES = 24 * 60
MAX_EXPIRY_MINUTES = 30 * 24 * 60

_USERNAME = re.compile(r"^[0-9a-z_]{3,50}$", re.IGNORECASE)
_FORBIDDEN_USERNAME_PREFIXES = ("1", "3", "bc1", "lnbc1")


def is_valid_username(username: object) -> bool:
    """3-50 of [0-9a-z_], case-insensitive, not looking like a bitcoin address or an invoice."""
    if not isinstance(username, str) or not _USERNAME.match(username):
        return False
    return not username.lower().startswith(_FORBIDDEN_USERNAME_PREFIXES)


def is_valid_memo(memo: object) -> bool:
    return memo is None or (isinstance(memo, str) and len(memo.encode("utf-8")) <= MAX_MEMO_BYTES)


def is_sat_amount(value: object) -> bool:
    """SatAmount: a non-negative integer (bool is not a number here)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
