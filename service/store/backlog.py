"""The backlog figures the alerts watch (failed splits, unforwarded money, retrying legs)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Backlog:
    failed_splits: int
    oldest_unforwarded_seconds: float
    legs_retrying: int


def read_backlog(db, now: datetime) -> Backlog:
    """One cheap query (partial index on unfinished splits); raises StoreUnavailable like any read."""
    with db.connection() as conn:
        row = db.q.backlog_figures.one(conn, now=now)
    return Backlog(
        failed_splits=int(row["failed_splits"]),
        oldest_unforwarded_seconds=max(0.0, float(row["oldest_unforwarded_seconds"])),
        legs_retrying=int(row["legs_retrying"]),
    )
