-- 006_lightning_address_payouts: legs paid at a Lightning Address or LNURL-pay link (DESIGN §8).
-- Applied by service/store/migrations.py inside one transaction (no BEGIN/COMMIT here).

-- A merchant may settle to a Lightning Address without a Blink key: such a split has no merchant
-- wallet and no key fingerprint (forward-payment, which needs the key, refuses it). Every split
-- still has exactly one destination for its base.
ALTER TABLE payment_splits
    ALTER COLUMN merchant_wallet_id DROP NOT NULL,
    ALTER COLUMN merchant_key_fingerprint DROP NOT NULL,
    ADD COLUMN merchant_payout_address TEXT,
    ADD CONSTRAINT payment_splits_one_merchant_destination
        CHECK ((merchant_wallet_id IS NULL) <> (merchant_payout_address IS NULL)),
    ADD CONSTRAINT payment_splits_wallet_merchant_has_fingerprint
        CHECK (merchant_wallet_id IS NULL OR merchant_key_fingerprint IS NOT NULL);

-- How a leg is paid: 'blink' (an invoice on the recipient's Blink wallet, no routing fee) or
-- 'lnurl' (an invoice fetched from the recipient's LNURL-pay server, paid over Lightning).
-- For an lnurl leg, recipient is the normalised Lightning Address or LNURL.
-- received_sats: the amount of the leg's stored invoice (leg sats minus the fee reserve for an
-- lnurl leg); fee_sats: the routing fee actually paid. Both are known for every succeeded leg,
-- and what left the POS wallet never exceeds the leg.
ALTER TABLE payment_legs
    ADD COLUMN payout TEXT NOT NULL DEFAULT 'blink',
    ADD COLUMN received_sats BIGINT,
    ADD COLUMN fee_sats BIGINT,
    ADD CONSTRAINT payment_legs_payout_allowed CHECK (payout IN ('blink', 'lnurl'));

UPDATE payment_legs SET received_sats = sats, fee_sats = 0 WHERE status = 'succeeded';

ALTER TABLE payment_legs
    ADD CONSTRAINT payment_legs_received_within_leg
        CHECK (received_sats IS NULL OR (received_sats > 0 AND received_sats <= sats)),
    ADD CONSTRAINT payment_legs_fee_within_leg
        CHECK (fee_sats IS NULL OR (fee_sats >= 0 AND received_sats IS NOT NULL
                                    AND received_sats + fee_sats <= sats)),
    ADD CONSTRAINT payment_legs_succeeded_has_fee
        CHECK (status <> 'succeeded' OR (received_sats IS NOT NULL AND fee_sats IS NOT NULL));
