-- 004_report_indexes: what the merchant reports (service/reports/, sql/queries/reports.sql) need.
-- Applied by service/store/migrations.py inside one transaction (no BEGIN/COMMIT here).
-- The split side is served by payment_splits_merchant_created_idx (fingerprint, created_at)
-- from 001. The tips report joins each of a merchant's splits to its tip legs: a partial index
-- that carries recipient and sats lets that join read only the index, not scan every leg.
CREATE INDEX payment_legs_tip_split_idx ON payment_legs (split_id) INCLUDE (recipient, sats)
    WHERE kind = 'tip';
