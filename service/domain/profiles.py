"""Split profiles: a merchant's saved tip split ("floor staff 2:1:1"), reused by later sales.

A sale copies a profile's recipients into its own split when it is created, so editing or
deleting a profile never changes a sale already made.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from service.domain.errors import PaymentError
from service.domain.model import TipRecipient

MAX_PROFILE_RECIPIENTS = 20
MAX_PROFILE_NAME_CHARS = 100
# Profiles are a convenience, not storage: a bound keeps one key from filling the table.
MAX_PROFILES_PER_MERCHANT = 100


@dataclass(frozen=True)
class SplitProfile:
    id: str
    name: str
    recipients: tuple[TipRecipient, ...]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class ProfileInput:
    """A profile's name and recipients as a request gave them, every rule checked."""

    name: str
    recipients: tuple[TipRecipient, ...]


class UnknownSplitProfile(PaymentError):
    """No profile of this merchant has this id (never made, deleted, or another merchant's)."""

    code = "unknown_split_profile"
