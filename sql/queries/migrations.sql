-- Statements of the migration runner (service/store/migrations.py).

-- name: try_migration_lock
-- Serialises runners across processes; released by release_migration_lock or on disconnect.
SELECT pg_try_advisory_lock(%(lock_key)s)

-- name: release_migration_lock
SELECT pg_advisory_unlock(%(lock_key)s)

-- name: create_schema_migrations
-- The record of applied migrations: one row per file, with the checksum it had when applied.
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    checksum   TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)

-- name: schema_migrations_exists
SELECT to_regclass('schema_migrations') IS NOT NULL

-- name: applied_migrations
SELECT version, name, checksum FROM schema_migrations ORDER BY version

-- name: current_schema_version
SELECT coalesce(max(version), 0) FROM schema_migrations

-- name: record_migration
INSERT INTO schema_migrations (version, name, checksum) VALUES (%(version)s, %(name)s, %(checksum)s)
