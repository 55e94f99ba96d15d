-- 005_drop_merchant_key_ciphertext: the service keeps no merchant key at rest (DESIGN §9).
-- Applied by service/store/migrations.py inside one transaction (no BEGIN/COMMIT here).
-- A split's base leg is now invoiced on the merchant's wallet without the merchant's key, so
-- the encrypted copies kept by earlier versions are erased, then the column goes. The
-- merchant stays identified by merchant_key_fingerprint (HMAC).
-- Postgres keeps the old row versions on disk until they are vacuumed; run
-- `VACUUM FULL payment_splits` afterwards (outside a transaction) to rewrite the table
-- without them, and drop backups taken before this migration once they are no longer needed.
UPDATE payment_splits SET merchant_key_ciphertext = '' WHERE merchant_key_ciphertext <> '';
ALTER TABLE payment_splits DROP COLUMN merchant_key_ciphertext;
