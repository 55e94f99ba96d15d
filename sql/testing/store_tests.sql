-- Statements used only by the data layer's tests (tests/test_schema.py, test_split_store.py,
-- test_migrations.py), never by the service.

-- name: create_text_dump_function
-- A session-local function returning every row of every table of the current schema as JSON
-- text, to prove that no plaintext secret is stored anywhere.
CREATE OR REPLACE FUNCTION pg_temp.dump_all_rows() RETURNS TABLE (table_name text, row_text text)
LANGUAGE plpgsql AS $$
DECLARE
    t record;
BEGIN
    FOR t IN SELECT tablename FROM pg_tables WHERE schemaname = current_schema() LOOP
        RETURN QUERY EXECUTE format('SELECT %L::text, to_jsonb(x)::text FROM %I x', t.tablename, t.tablename);
    END LOOP;
END;
$$

-- name: database_text_dump
SELECT table_name, row_text FROM pg_temp.dump_all_rows()

-- name: force_split_status
-- Bypasses the store to check the status constraint itself.
UPDATE payment_splits SET status = %(status)s WHERE payment_hash = %(payment_hash)s

-- name: force_leg_status
UPDATE payment_legs SET status = %(status)s WHERE id = %(leg_id)s

-- name: insert_leg
INSERT INTO payment_legs (split_id, kind, recipient, sats, position)
VALUES (%(split_id)s, %(kind)s, %(recipient)s, %(sats)s, %(position)s)

-- name: delete_event
-- payment_events is append-only: this must be refused by its trigger.
DELETE FROM payment_events WHERE split_id = %(split_id)s

-- name: split_status
SELECT status FROM payment_splits WHERE payment_hash = %(payment_hash)s

-- name: split_event_types
SELECT e.event_type FROM payment_events e JOIN payment_splits s ON s.id = e.split_id
WHERE s.payment_hash = %(payment_hash)s ORDER BY e.id

-- name: count_rows_named_in_views
-- The reporting views answer (their shapes are part of the schema).
SELECT (SELECT count(*) FROM recent_payments) AS recent,
       (SELECT count(*) FROM tip_leaderboard) AS leaderboard,
       (SELECT count(*) FROM daily_payment_stats) AS daily,
       (SELECT count(*) FROM active_payments) AS active

-- name: insert_metric_at
INSERT INTO system_metrics (name, value, recorded_at) VALUES (%(name)s, %(value)s, %(recorded_at)s)

-- name: count_metrics
SELECT count(*) FROM system_metrics

-- name: schema_migration_rows
SELECT version, name, checksum FROM schema_migrations ORDER BY version

-- name: drop_migration_test_database
DROP DATABASE IF EXISTS blinkpos_migration_test WITH (FORCE)

-- name: create_migration_test_database
CREATE DATABASE blinkpos_migration_test

-- name: call_cleanup_expired_payments
SELECT cleanup_expired_payments()

-- name: insert_split_with_key_ciphertext
-- A split as versions before 005 stored it: with the merchant key's ciphertext.
INSERT INTO payment_splits (
    payment_hash, payment_request, invoice_sats, base_sats, tip_sats, merchant_wallet_id,
    merchant_key_ciphertext, merchant_key_fingerprint, display_currency, environment,
    created_at, updated_at, expires_at)
VALUES (%(payment_hash)s, 'lnbc1', 1000, 1000, 0, 'merchant-wallet', %(ciphertext)s,
        %(fingerprint)s, 'BTC', 'test', now(), now(), now() + interval '1 day')

-- name: payment_split_columns
SELECT column_name FROM information_schema.columns WHERE table_name = 'payment_splits'
