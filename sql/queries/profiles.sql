-- Split profiles (service/store/profiles.py). Every statement is scoped to ONE merchant by
-- merchant_key_fingerprint (its key's fingerprints under each configured secret): an id of
-- another merchant's profile finds nothing, exactly like an id that never existed.

-- name: list_split_profiles
SELECT id::text AS id, name, recipients, created_at, updated_at
FROM split_profiles
WHERE merchant_key_fingerprint = ANY(%(fingerprints)s)
ORDER BY created_at, id

-- name: insert_split_profile
-- Nothing is inserted (no row returned) when the merchant already has max_profiles.
INSERT INTO split_profiles (merchant_key_fingerprint, name, recipients, created_at, updated_at)
SELECT %(fingerprint)s, %(name)s, %(recipients)s, %(now)s, %(now)s
WHERE (SELECT count(*) FROM split_profiles
       WHERE merchant_key_fingerprint = ANY(%(fingerprints)s)) < %(max_profiles)s
RETURNING id::text AS id, name, recipients, created_at, updated_at

-- name: update_split_profile
UPDATE split_profiles
SET name = %(name)s, recipients = %(recipients)s, updated_at = %(now)s
WHERE id = %(id)s::uuid AND merchant_key_fingerprint = ANY(%(fingerprints)s)
RETURNING id::text AS id, name, recipients, created_at, updated_at

-- name: delete_split_profile
DELETE FROM split_profiles
WHERE id = %(id)s::uuid AND merchant_key_fingerprint = ANY(%(fingerprints)s)
RETURNING id::text AS id
