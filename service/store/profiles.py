"""ProfileStore: split profiles in Postgres, each merchant's list cached in Redis.

Create-invoice reads a profile on every sale that names one, and profiles change rarely, so a
merchant's whole list is kept under profiles:{fingerprint} for a few minutes. Every change
deletes that copy after its commit; Redis trouble costs only a Postgres read.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import redis
from psycopg.types.json import Jsonb

from service.domain.clock import Clock, utc_now
from service.domain.model import TipRecipient
from service.domain.profiles import MAX_PROFILES_PER_MERCHANT, ProfileInput, SplitProfile
from service.store import keys
from service.store.postgres import Database

log = logging.getLogger(__name__)


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except (ValueError, TypeError, AttributeError):
        return False
    return True


def _profile(row: dict[str, Any]) -> SplitProfile:
    return SplitProfile(
        id=str(row["id"]),
        name=row["name"],
        recipients=tuple(TipRecipient.from_json(entry) for entry in row["recipients"]),
        created_at=_instant(row["created_at"]),
        updated_at=_instant(row["updated_at"]),
    )


def _instant(value: datetime | str) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def _document(profile: SplitProfile) -> dict[str, Any]:
    return {
        "id": profile.id,
        "name": profile.name,
        "recipients": [recipient.to_json() for recipient in profile.recipients],
        "created_at": profile.created_at.isoformat(),
        "updated_at": profile.updated_at.isoformat(),
    }


class ProfileStore:
    """A merchant is the tuple of its key's fingerprints (Fingerprints.candidates): the first
    owns what it creates, and a profile made under any of them stays its own after a rotation."""

    def __init__(self, db: Database, client: redis.Redis, clock: Clock = utc_now) -> None:
        self._db = db
        self._redis = client
        self._clock = clock

    def list(self, fingerprints: Sequence[str]) -> list[SplitProfile]:
        """The merchant's profiles, oldest first."""
        cached = self._cached(fingerprints[0])
        if cached is not None:
            return cached
        with self._db.connection() as conn:
            rows = self._db.q.list_split_profiles.all(conn, fingerprints=list(fingerprints))
        profiles = [_profile(row) for row in rows]
        self._remember(fingerprints[0], profiles)
        return profiles

    def find(self, fingerprints: Sequence[str], profile_id: str) -> SplitProfile | None:
        """The merchant's profile with this id; None for any other id, well-formed or not."""
        return next((p for p in self.list(fingerprints) if p.id == profile_id.lower()), None)

    def create(self, fingerprints: Sequence[str], profile: ProfileInput) -> SplitProfile | None:
        """The new profile; None when the merchant already has MAX_PROFILES_PER_MERCHANT."""
        with self._db.connection() as conn:
            row = self._db.q.insert_split_profile.one(
                conn,
                fingerprint=fingerprints[0],
                fingerprints=list(fingerprints),
                max_profiles=MAX_PROFILES_PER_MERCHANT,
                now=self._clock(),
                **self._columns(profile),
            )
        self._forget(fingerprints)
        return None if row is None else _profile(row)

    def update(
        self, fingerprints: Sequence[str], profile_id: str, profile: ProfileInput
    ) -> SplitProfile | None:
        """The profile after the change; None when the merchant has no profile with this id."""
        if not _is_uuid(profile_id):
            return None
        with self._db.connection() as conn:
            row = self._db.q.update_split_profile.one(
                conn,
                id=profile_id,
                fingerprints=list(fingerprints),
                now=self._clock(),
                **self._columns(profile),
            )
        self._forget(fingerprints)
        return None if row is None else _profile(row)

    def delete(self, fingerprints: Sequence[str], profile_id: str) -> bool:
        """False when the merchant has no profile with this id."""
        if not _is_uuid(profile_id):
            return False
        with self._db.connection() as conn:
            row = self._db.q.delete_split_profile.one(conn, id=profile_id, fingerprints=list(fingerprints))
        self._forget(fingerprints)
        return row is not None

    @staticmethod
    def _columns(profile: ProfileInput) -> dict[str, Any]:
        return {"name": profile.name, "recipients": Jsonb([r.to_json() for r in profile.recipients])}

    def _cached(self, fingerprint: str) -> list[SplitProfile] | None:
        try:
            raw = self._redis.get(keys.split_profiles(fingerprint))
        except redis.RedisError as exc:
            log.warning("profile_cache_error", extra={"error_type": type(exc).__name__})
            return None
        if raw is None:
            return None
        try:
            return [_profile(document) for document in json.loads(raw)]
        except (ValueError, KeyError, TypeError):
            return None  # a copy this code cannot read: Postgres has the truth

    def _remember(self, fingerprint: str, profiles: list[SplitProfile]) -> None:
        document = json.dumps([_document(profile) for profile in profiles])
        try:
            self._redis.set(keys.split_profiles(fingerprint), document, ex=keys.SPLIT_PROFILES_TTL_SECONDS)
        except redis.RedisError as exc:
            log.warning("profile_cache_error", extra={"error_type": type(exc).__name__})

    def _forget(self, fingerprints: Sequence[str]) -> None:
        try:
            self._redis.delete(*(keys.split_profiles(fingerprint) for fingerprint in fingerprints))
        except redis.RedisError as exc:
            log.warning("profile_cache_error", extra={"error_type": type(exc).__name__})
