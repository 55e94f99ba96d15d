-- 008_leg_invoice_index: find the legs that store an invoice, by its payment hash.
-- Applied by service/store/migrations.py inside one transaction (no BEGIN/COMMIT here).
-- An LNURL server may hand the same invoice out again (some cache one per amount); before such an
-- invoice is stored on a leg, the forwarder asks whether another leg already holds it, since one
-- payment must never close two legs. Not unique: rows from before this check are left as they are.
CREATE INDEX payment_legs_payment_hash_idx ON payment_legs (payment_hash) WHERE payment_hash IS NOT NULL;
