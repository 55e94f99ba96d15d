-- 007_split_profiles: a merchant's saved tip splits (DESIGN §4, issue 15).
-- Applied by service/store/migrations.py inside one transaction (no BEGIN/COMMIT here).
-- A profile belongs to the merchant whose key made it, known only by the key's fingerprint
-- (DESIGN §9: no key at rest). A sale copies the recipients into its own split, so profiles
-- are edited and deleted in place: no sale refers to them.
CREATE TABLE split_profiles (
    id                       UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    merchant_key_fingerprint TEXT NOT NULL,
    name                     TEXT NOT NULL,
    -- [{"username": ..., "share": "<exact fraction as text>"}], in the order given.
    recipients               JSONB NOT NULL,
    created_at               TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at               TIMESTAMPTZ NOT NULL DEFAULT now(),

    CONSTRAINT split_profiles_name_length CHECK (char_length(name) BETWEEN 1 AND 100),
    CONSTRAINT split_profiles_recipients_count
        CHECK (jsonb_typeof(recipients) = 'array' AND jsonb_array_length(recipients) BETWEEN 1 AND 20)
);

-- Every read is one merchant's profiles, oldest first.
CREATE INDEX split_profiles_merchant_idx ON split_profiles (merchant_key_fingerprint, created_at, id);
