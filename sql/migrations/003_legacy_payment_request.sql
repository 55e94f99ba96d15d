-- 003_legacy_payment_request: splits migrated from the original POS's .tip-store.json.
-- Applied by service/store/migrations.py inside one transaction (no BEGIN/COMMIT here).

-- The legacy file never kept the BOLT11 payment request, only the payment hash; a migrated
-- split is checked for payment by hash. Only those splits (environment 'legacy', written by
-- `python -m migrate`) may lack it: every split this service creates still carries its request.
ALTER TABLE payment_splits ALTER COLUMN payment_request DROP NOT NULL;
ALTER TABLE payment_splits ADD CONSTRAINT payment_splits_payment_request_known
    CHECK (payment_request IS NOT NULL OR environment = 'legacy');
