"""Typed errors of the store layer; messages never carry keys or SQL values."""

from __future__ import annotations

from service.domain.errors import DependencyDown


class StoreError(Exception):
    """Base of every error raised by service.store."""


class StoreUnavailable(StoreError, DependencyDown):
    """Postgres cannot be reached (or the pool is exhausted): the API answers 503."""


class ConstraintViolation(StoreError):
    """The database refused a write because it breaks a table constraint."""

    def __init__(self, constraint: str | None, message: str = "constraint violated") -> None:
        self.constraint = constraint
        super().__init__(f"{message}: {constraint}" if constraint else message)


class DuplicateSplit(ConstraintViolation):
    """A split with this payment hash already exists."""

    def __init__(self, constraint: str | None = None) -> None:
        super().__init__(constraint, "a split with this payment hash already exists")


class MigrationError(StoreError):
    """The migrations on disk and those recorded in the database disagree, or the lock timed out."""


class InvalidKeySetting(StoreError, ValueError):
    """The fingerprint key setting (API_KEY_FINGERPRINT_KEY / API_KEY_ENCRYPTION_KEY) is malformed."""
