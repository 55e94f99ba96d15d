-- Statements used only by tests/test_migrate.py, never by the service or the tool.

-- name: count_migration_rows
-- How many rows the migration may have written, per table and per split status.
SELECT (SELECT count(*) FROM payment_splits) AS splits,
       (SELECT count(*) FROM payment_splits WHERE status = 'pending') AS pending,
       (SELECT count(*) FROM payment_splits WHERE status = 'expired') AS expired,
       (SELECT count(*) FROM payment_legs) AS legs,
       (SELECT count(*) FROM payment_events) AS events,
       (SELECT count(*) FROM payment_events WHERE event_type = 'migrated') AS migrated_events

-- name: alter_split_memo
-- Changes a split behind the store's back (what verification must catch).
UPDATE payment_splits SET memo = %(memo)s WHERE payment_hash = %(payment_hash)s
