-- Statements used only by tests/test_reports.py, never by the service.

-- name: report_test_insert_bulk_splits
-- %(count)s completed splits with a base and a tip leg each, spread over %(merchants)s key
-- fingerprints ('bulk-fp-<n>') and the 365 days before %(until)s.
WITH splits AS (
    INSERT INTO payment_splits (
        payment_hash, payment_request, invoice_sats, base_sats, tip_sats, merchant_wallet_id,
        merchant_key_fingerprint, display_currency, memo, environment,
        status, created_at, updated_at, expires_at, paid_at, processed_at)
    SELECT encode(sha256(convert_to('bulk-' || g, 'UTF8')), 'hex'), 'lnbcbulk' || g,
           1000 + mod(g, 97), 900 + mod(g, 97), 100, 'bulk-wallet-' || mod(g, %(merchants)s),
           'bulk-fp-' || mod(g, %(merchants)s), 'BTC', 'bulk sale ' || g, 'test',
           'completed', at, at, at + interval '1 day', at, at + interval '5 seconds'
    FROM generate_series(1, %(count)s) AS g
    CROSS JOIN LATERAL (
        SELECT %(until)s::timestamptz
               - make_interval(days => mod(g, 365), secs => mod(g * 7919, 86400)) AS at
    ) AS t
    RETURNING id, created_at, base_sats, merchant_wallet_id
)
INSERT INTO payment_legs (split_id, kind, recipient, recipient_wallet_id, sats, position, status,
                          payment_request, paid_at, received_sats, fee_sats)
SELECT id, 'base', merchant_wallet_id, merchant_wallet_id, base_sats, 0, 'succeeded', 'lnbcleg', created_at,
       base_sats, 0
FROM splits
UNION ALL
SELECT id, 'tip', 'bulk_tipee_' || mod(id, 20), NULL, 100, 1, 'succeeded', 'lnbcleg', created_at, 100, 0
FROM splits

-- name: report_test_vacuum_analyze
-- What autovacuum does after a bulk load: planner statistics and the visibility map (which
-- makes index-only scans of payment_legs_tip_split_idx worth choosing). Run outside a transaction.
VACUUM (ANALYZE) payment_splits, payment_legs
