"""The worker's own rows: its heartbeats (read by /api/health) and the system_metrics samples."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from service.store.postgres import Database


class WorkerRows:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._q = db.q

    def beat(self, worker_id: str, now: datetime) -> None:
        with self._db.connection() as conn:
            self._q.beat.run(conn, worker_id=worker_id, now=now)

    def heartbeat_age_seconds(self) -> float | None:
        """Seconds since the freshest heartbeat (None: no worker ever ran)."""
        with self._db.connection(timeout=0.8) as conn:
            age = self._q.heartbeat_age_seconds.scalar(conn)
        return None if age is None else round(float(age), 3)

    def record_samples(self, samples: Iterable[Any], recorded_at: datetime) -> int:
        """Writes (name, value, tags) samples in one batch; returns how many."""
        rows = [
            {"name": s.name, "value": float(s.value), "tags": Jsonb(s.tags), "recorded_at": recorded_at}
            for s in samples
        ]
        if rows:
            with self._db.transaction() as conn:
                self._q.insert_metric.many(conn, rows)
        return len(rows)

    def prune(self, metrics_days: int, heartbeats_before: datetime) -> int:
        """Drops samples older than metrics_days and heartbeats of workers long gone; samples dropped."""
        with self._db.connection() as conn:
            pruned = self._q.cleanup_old_metrics.scalar(conn, days=metrics_days)
            self._q.prune_heartbeats.run(conn, before=heartbeats_before)
        return int(pruned or 0)
