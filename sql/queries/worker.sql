-- Statements of the background worker (service/worker.py), the operator commands
-- (service/operator.py) and the health report's worker fields.
-- Timestamps come from the caller's clock as %(now)s, like the store's statements.

-- name: claim_due_splits
-- Takes a batch of splits due for forwarding and leases them to %(owner)s in ONE statement:
-- paid splits nobody holds, and forwarding splits whose lease is free or ran out and that have
-- no failed leg still waiting for its retry time (so a due retry, or a leg an interrupted run
-- left planned/invoiced). FOR UPDATE SKIP LOCKED: concurrent workers each take other rows and
-- never queue behind one another; the claim and its 'forwarding_started' events commit together.
WITH due AS (
    SELECT s.id
    FROM payment_splits s
    WHERE s.status IN ('paid', 'forwarding')
      AND (s.claimed_by IS NULL OR s.claimed_at < %(now)s - make_interval(secs => %(lease_seconds)s::float8))
      AND NOT EXISTS (SELECT 1 FROM payment_legs l
                      WHERE l.split_id = s.id AND l.status = 'failed' AND l.next_attempt_at > %(now)s)
    ORDER BY s.paid_at
    LIMIT %(limit)s
    FOR UPDATE OF s SKIP LOCKED
), claimed AS (
    UPDATE payment_splits s
    SET status = 'forwarding', claimed_by = %(owner)s, claimed_at = %(now)s, updated_at = %(now)s
    FROM due
    WHERE s.id = due.id
    RETURNING s.*
), logged AS (
    INSERT INTO payment_events (split_id, event_type, data)
    SELECT id, 'forwarding_started',
           jsonb_build_object('owner', claimed_by, 'lease_seconds', %(lease_seconds)s::float8,
                              'source', 'worker')
    FROM claimed
)
SELECT c.*,
       coalesce((SELECT jsonb_agg(to_jsonb(l) ORDER BY l.position)
                 FROM payment_legs l WHERE l.split_id = c.id), '[]'::jsonb) AS legs
FROM claimed c
ORDER BY c.paid_at

-- name: claim_pending_checks
-- Pending splits to ask Blink about (a missed webhook), each with its own backoff: first when
-- older than %(min_age_seconds)s, then after min_age * 2^checks seconds, capped at
-- %(max_interval_seconds)s; and once more right after its expiry, so no split is expired
-- without asking Blink first. Stamps status_checked_at in the same statement (SKIP LOCKED:
-- two workers never ask about the same split in one round).
WITH due AS (
    SELECT s.id
    FROM payment_splits s
    WHERE s.status = 'pending'
      AND s.created_at < %(now)s - make_interval(secs => %(min_age_seconds)s::float8)
      AND (s.status_checked_at IS NULL
           OR s.status_checked_at < %(now)s - make_interval(secs => least(
                  %(min_age_seconds)s::float8 * power(2, least(s.status_checks, 20)),
                  %(max_interval_seconds)s::float8))
           OR (s.expires_at < %(now)s AND s.status_checked_at < s.expires_at))
    ORDER BY coalesce(s.status_checked_at, s.created_at)
    LIMIT %(limit)s
    FOR UPDATE OF s SKIP LOCKED
)
UPDATE payment_splits s
SET status_checked_at = %(now)s, status_checks = s.status_checks + 1
FROM due
WHERE s.id = due.id
RETURNING s.payment_hash, s.expires_at

-- name: expire_checked_unpaid
-- Like cleanup_expired_payments(), but only for splits asked at Blink after their expiry
-- (claim_pending_checks does that) AND answered as not paid (%(payment_hashes)s): a split paid
-- in its last second is never expired unseen, even when the check after expiry failed.
WITH expired AS (
    UPDATE payment_splits
    SET status = 'expired', updated_at = %(now)s
    WHERE status = 'pending' AND paid_at IS NULL AND expires_at < %(now)s
      AND status_checked_at >= expires_at
      AND payment_hash = ANY(%(payment_hashes)s::text[])
    RETURNING id, expires_at
), logged AS (
    INSERT INTO payment_events (split_id, event_type, data)
    SELECT id, 'expired', jsonb_build_object('expires_at', expires_at, 'source', 'worker')
    FROM expired
    RETURNING 1
)
SELECT count(*)::integer FROM logged

-- name: oldest_due_age_seconds
-- Worker lag: how long the oldest paid-but-unfinished split has been waiting (0 when none).
SELECT coalesce(extract(epoch FROM %(now)s - min(s.paid_at)), 0)::float8
FROM payment_splits s
WHERE s.status IN ('paid', 'forwarding')
  AND (s.claimed_by IS NULL OR s.claimed_at < %(now)s - make_interval(secs => %(lease_seconds)s::float8))
  AND NOT EXISTS (SELECT 1 FROM payment_legs l
                  WHERE l.split_id = s.id AND l.status = 'failed' AND l.next_attempt_at > %(now)s)

-- name: renew_lease
-- Keeps a held lease fresh while a worker works through its batch.
UPDATE payment_splits
SET claimed_at = %(now)s
WHERE payment_hash = %(payment_hash)s AND claimed_by = %(owner)s

-- name: beat
-- The worker's heartbeat.
INSERT INTO worker_heartbeats (worker_id, started_at, beat_at)
VALUES (%(worker_id)s, %(now)s, %(now)s)
ON CONFLICT (worker_id) DO UPDATE SET beat_at = excluded.beat_at

-- name: prune_heartbeats
DELETE FROM worker_heartbeats WHERE beat_at < %(before)s

-- name: heartbeat_age_seconds
-- Seconds since the freshest worker heartbeat; NULL when no worker ever beat.
SELECT extract(epoch FROM now() - max(beat_at))::float8 FROM worker_heartbeats

-- name: list_attention_splits
-- Operator: failed splits, and forwarding splits that look stuck (a failed leg, or a lease
-- that ran out), newest change first.
SELECT s.*,
       coalesce((SELECT jsonb_agg(to_jsonb(l) ORDER BY l.position)
                 FROM payment_legs l WHERE l.split_id = s.id), '[]'::jsonb) AS legs
FROM payment_splits s
WHERE s.status = 'failed'
   OR (s.status = 'forwarding'
       AND (s.claimed_at < %(now)s - make_interval(secs => %(lease_seconds)s::float8)
            OR EXISTS (SELECT 1 FROM payment_legs l WHERE l.split_id = s.id AND l.status = 'failed')))
ORDER BY s.updated_at DESC
LIMIT %(limit)s

-- name: reset_split_for_retry
-- Operator (source 'operator') or merchant (source 'merchant'): a failed (or stuck forwarding) split back to forwarding, its failed legs' attempts
-- and retry times reset and its lease dropped, with a 'retry_requested' event; the worker then
-- picks it up. Succeeded legs stay succeeded: nothing is ever paid twice. A forwarding split
-- whose lease is still held is left alone (its holder is working on it).
WITH split AS (
    UPDATE payment_splits
    SET status = 'forwarding', claimed_by = NULL, claimed_at = NULL, last_error = NULL,
        updated_at = %(now)s
    WHERE payment_hash = %(payment_hash)s
      AND (status = 'failed'
           OR (status = 'forwarding'
               AND (claimed_by IS NULL
                    OR claimed_at < %(now)s - make_interval(secs => %(lease_seconds)s::float8))))
    RETURNING *
), legs AS (
    UPDATE payment_legs l
    SET attempts = 0, next_attempt_at = NULL, updated_at = %(now)s
    FROM split
    WHERE l.split_id = split.id AND l.status = 'failed'
    RETURNING l.id
), logged AS (
    INSERT INTO payment_events (split_id, event_type, data)
    SELECT id, 'retry_requested',
           jsonb_build_object('source', %(source)s::text, 'legs_reset', (SELECT count(*) FROM legs))
    FROM split
)
SELECT split.payment_hash, (SELECT count(*) FROM legs) AS legs_reset FROM split
