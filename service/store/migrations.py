"""Versioned, idempotent schema migrations from sql/migrations/NNN_name.sql.

Each pending file runs in its own transaction together with its row in schema_migrations
(version, name, checksum), so a file is either fully applied and recorded or not at all.
Runners in several processes are serialised by a Postgres advisory lock; the second one
waits, then finds nothing left to do. A recorded checksum that no longer matches its file
is an error: applied migrations are never edited, a new file is added instead.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import psycopg

from service.store.errors import MigrationError, StoreUnavailable
from service.store.sql import queries

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "sql" / "migrations"

# Arbitrary constant naming "the BlinkPOS schema migration" among advisory locks.
MIGRATION_LOCK_KEY = 0x426C_696E_6B50_4F53 & 0x7FFF_FFFF_FFFF_FFFF

_FILE_NAME = re.compile(r"^(\d+)_([a-z0-9_]+)\.sql$")
_LOCK_POLL_SECONDS = 0.1

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str
    checksum: str

    @property
    def label(self) -> str:
        return f"{self.version:03d}_{self.name}"


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Every migration file in version order; rejects stray names and duplicate versions."""
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if not match:
            raise MigrationError(f"migration file name {path.name!r} is not NNN_name.sql")
        version = int(match.group(1))
        if version in found:
            raise MigrationError(f"migration version {version} appears twice")
        raw = path.read_bytes()
        found[version] = Migration(
            version=version,
            name=match.group(2),
            sql=raw.decode("utf-8"),
            checksum=hashlib.sha256(raw).hexdigest(),
        )
    return [found[v] for v in sorted(found)]


@cache
def _bundled() -> tuple[Migration, ...]:
    return tuple(discover())


def expected_version() -> int:
    """The highest migration version shipped with this code (0 if none)."""
    bundled = _bundled()
    return bundled[-1].version if bundled else 0


def current_version(conn: psycopg.Connection) -> int:
    """The highest applied version recorded in the database (0 on a fresh database)."""
    q = queries()
    if not q.schema_migrations_exists.scalar(conn):
        return 0
    return int(q.current_schema_version.scalar(conn))


def upgrade(
    conninfo: str,
    *,
    lock_wait_seconds: float = 60.0,
    connect_timeout_seconds: int = 10,
    directory: Path | None = None,
) -> list[str]:
    """Applies every pending migration; returns the labels applied (empty when up to date)."""
    migrations = discover(directory) if directory is not None else list(_bundled())
    try:
        conn = psycopg.connect(conninfo, autocommit=True, connect_timeout=max(2, connect_timeout_seconds))
    except psycopg.OperationalError as exc:
        raise StoreUnavailable("cannot connect to Postgres to migrate") from exc
    with conn:
        _acquire_lock(conn, lock_wait_seconds)
        try:
            return _apply_pending(conn, migrations)
        finally:
            queries().release_migration_lock.scalar(conn, lock_key=MIGRATION_LOCK_KEY)


def _acquire_lock(conn: psycopg.Connection, wait_seconds: float) -> None:
    # Polling a try-lock keeps the wait bounded; a plain pg_advisory_lock could block forever.
    deadline = time.monotonic() + wait_seconds
    while not queries().try_migration_lock.scalar(conn, lock_key=MIGRATION_LOCK_KEY):
        if time.monotonic() >= deadline:
            raise MigrationError(f"another migration runner held the lock for over {wait_seconds:.0f}s")
        time.sleep(_LOCK_POLL_SECONDS)


def _apply_pending(conn: psycopg.Connection, migrations: list[Migration]) -> list[str]:
    q = queries()
    q.create_schema_migrations.run(conn)
    applied = {row["version"]: row for row in q.applied_migrations.all(conn)}
    known = {m.version for m in migrations}
    for version, row in applied.items():
        if version not in known:
            raise MigrationError(f"database has migration {version} ({row['name']}) that this code lacks")
    done: list[str] = []
    for migration in migrations:
        recorded = applied.get(migration.version)
        if recorded is not None:
            if recorded["checksum"] != migration.checksum:
                raise MigrationError(f"migration {migration.label} changed after it was applied")
            continue
        with conn.transaction():
            conn.execute(migration.sql)
            q.record_migration.run(
                conn, version=migration.version, name=migration.name, checksum=migration.checksum
            )
        log.info("migration_applied", extra={"migration": migration.label})
        done.append(migration.label)
    return done
