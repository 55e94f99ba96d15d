-- Statements of the file-store migration tool (migrate/, `python -m migrate`).
-- A migrated split has no payment_request (the legacy file never kept it: it is checked for
-- payment by hash), its original created_at, and the status the tool decided (pending while
-- its invoice may still be paid, expired otherwise).

-- name: insert_migrated_split
-- A migrated split, its planned legs (a JSONB array) and its 'migrated' event, in one
-- statement. A split already present is left untouched and no row comes back, so a re-run
-- changes nothing.
WITH split AS (
    INSERT INTO payment_splits (
        payment_hash, invoice_sats, base_sats, tip_sats, tip_percent,
        merchant_wallet_id, merchant_key_fingerprint, tip_recipients,
        display_currency, base_amount_display, tip_amount_display, memo, environment,
        status, created_at, updated_at, expires_at)
    VALUES (
        %(payment_hash)s, %(invoice_sats)s, %(base_sats)s, %(tip_sats)s, %(tip_percent)s,
        %(merchant_wallet_id)s, %(merchant_key_fingerprint)s,
        %(tip_recipients)s, %(display_currency)s, %(base_amount_display)s,
        %(tip_amount_display)s, %(memo)s, %(environment)s,
        %(status)s, %(created_at)s, %(now)s, %(expires_at)s)
    ON CONFLICT (payment_hash) DO NOTHING
    RETURNING *
), legs AS (
    INSERT INTO payment_legs (split_id, kind, recipient, recipient_wallet_id, sats, position,
                              created_at, updated_at)
    SELECT split.id, planned.kind, planned.recipient, planned.recipient_wallet_id, planned.sats,
           planned.position, %(now)s, %(now)s
    FROM split
    CROSS JOIN jsonb_to_recordset(%(legs)s::jsonb)
        AS planned (kind text, recipient text, recipient_wallet_id text, sats bigint, position integer)
    RETURNING *
), logged AS (
    INSERT INTO payment_events (split_id, event_type, data)
    SELECT id, 'migrated', jsonb_build_object(
        'source', %(source)s::text, 'status', status, 'invoice_sats', invoice_sats,
        'base_sats', base_sats, 'tip_sats', tip_sats, 'legs', jsonb_array_length(%(legs)s::jsonb))
    FROM split
)
SELECT split.*,
       coalesce((SELECT jsonb_agg(to_jsonb(legs) ORDER BY legs.position) FROM legs), '[]'::jsonb) AS legs
FROM split

-- name: select_present_hashes
-- Which of the given payment hashes already have a split (planning and dry runs).
SELECT payment_hash FROM payment_splits WHERE payment_hash = ANY(%(payment_hashes)s::text[])
