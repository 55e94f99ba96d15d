-- Statements of the hybrid store (service/store/splits.py).
-- Every state change writes its payment_events row in the SAME statement (data-modifying
-- CTEs), so a change and its audit row commit together in one round trip.
-- Statements returning a split add a `legs` column: the split's legs as a JSONB array.
-- Timestamps come from the store's clock as %(now)s, so tests can move time.

-- name: insert_split
-- A split, its planned legs (a JSONB array) and its 'created' event, in one round trip.
WITH split AS (
    INSERT INTO payment_splits (
        payment_hash, payment_request, invoice_sats, base_sats, tip_sats, tip_percent,
        merchant_wallet_id, merchant_key_fingerprint, merchant_payout_address, tip_recipients,
        display_currency, base_amount_display, tip_amount_display, memo, environment,
        client_total_sats, created_at, updated_at, expires_at)
    VALUES (
        %(payment_hash)s, %(payment_request)s, %(invoice_sats)s, %(base_sats)s, %(tip_sats)s,
        %(tip_percent)s, %(merchant_wallet_id)s, %(merchant_key_fingerprint)s,
        %(merchant_payout_address)s, %(tip_recipients)s,
        %(display_currency)s, %(base_amount_display)s, %(tip_amount_display)s, %(memo)s, %(environment)s,
        %(client_total_sats)s, %(now)s, %(now)s, %(expires_at)s)
    RETURNING *
), legs AS (
    INSERT INTO payment_legs (split_id, kind, recipient, recipient_wallet_id, sats, position, payout,
                              created_at, updated_at)
    SELECT split.id, planned.kind, planned.recipient, planned.recipient_wallet_id, planned.sats,
           planned.position, coalesce(planned.payout, 'blink'), %(now)s, %(now)s
    FROM split
    CROSS JOIN jsonb_to_recordset(%(legs)s::jsonb)
        AS planned (kind text, recipient text, recipient_wallet_id text, sats bigint, position integer,
                    payout text)
    RETURNING *
), logged AS (
    INSERT INTO payment_events (split_id, event_type, data)
    SELECT id, 'created', jsonb_build_object(
        'invoice_sats', invoice_sats, 'base_sats', base_sats, 'tip_sats', tip_sats,
        'legs', jsonb_array_length(%(legs)s::jsonb), 'environment', environment)
    FROM split
)
SELECT split.*,
       coalesce((SELECT jsonb_agg(to_jsonb(legs) ORDER BY legs.position) FROM legs), '[]'::jsonb) AS legs
FROM split

-- name: select_split
-- One split with its legs, by payment hash.
SELECT s.*,
       coalesce((SELECT jsonb_agg(to_jsonb(l) ORDER BY l.position)
                 FROM payment_legs l WHERE l.split_id = s.id), '[]'::jsonb) AS legs
FROM payment_splits s
WHERE s.payment_hash = %(payment_hash)s

-- name: mark_paid
-- pending (or expired, when a late payment arrives) -> paid, with its 'paid' event.
-- Idempotent: a split already past pending comes back unchanged with changed = false.
WITH paid AS (
    UPDATE payment_splits
    SET status = 'paid', paid_at = coalesce(paid_at, %(now)s), updated_at = %(now)s
    WHERE payment_hash = %(payment_hash)s AND status IN ('pending', 'expired')
    RETURNING *
), logged AS (
    INSERT INTO payment_events (split_id, event_type, data)
    SELECT id, 'paid', jsonb_build_object('source', %(source)s::text) FROM paid
)
SELECT p.*, true AS changed,
       coalesce((SELECT jsonb_agg(to_jsonb(l) ORDER BY l.position)
                 FROM payment_legs l WHERE l.split_id = p.id), '[]'::jsonb) AS legs
FROM paid p
UNION ALL
SELECT s.*, false AS changed,
       coalesce((SELECT jsonb_agg(to_jsonb(l) ORDER BY l.position)
                 FROM payment_legs l WHERE l.split_id = s.id), '[]'::jsonb) AS legs
FROM payment_splits s
WHERE s.payment_hash = %(payment_hash)s AND NOT EXISTS (SELECT 1 FROM paid)

-- name: release_split
-- Drops the lease held by owner; the status stays as it is (forwarding).
WITH released AS (
    UPDATE payment_splits
    SET claimed_by = NULL, claimed_at = NULL, updated_at = %(now)s,
        last_error = coalesce(%(error)s::text, last_error)
    WHERE payment_hash = %(payment_hash)s AND claimed_by = %(owner)s
    RETURNING id
), logged AS (
    INSERT INTO payment_events (split_id, event_type, data)
    SELECT id, 'released', jsonb_strip_nulls(jsonb_build_object('owner', %(owner)s::text, 'error', %(error)s::text))
    FROM released
)
SELECT count(*) FROM released

-- name: complete_split
-- forwarding (held by owner) -> completed, only when every leg has succeeded.
WITH done AS (
    UPDATE payment_splits s
    SET status = 'completed', processed_at = %(now)s, updated_at = %(now)s,
        claimed_by = NULL, claimed_at = NULL, last_error = NULL
    WHERE s.payment_hash = %(payment_hash)s
      AND s.status = 'forwarding'
      AND s.claimed_by = %(owner)s
      AND NOT EXISTS (SELECT 1 FROM payment_legs l WHERE l.split_id = s.id AND l.status <> 'succeeded')
    RETURNING s.*
), logged AS (
    INSERT INTO payment_events (split_id, event_type, data)
    SELECT id, 'completed', jsonb_build_object('owner', %(owner)s::text, 'invoice_sats', invoice_sats)
    FROM done
)
SELECT d.*,
       coalesce((SELECT jsonb_agg(to_jsonb(l) ORDER BY l.position)
                 FROM payment_legs l WHERE l.split_id = d.id), '[]'::jsonb) AS legs
FROM done d

-- name: fail_split
-- paid/forwarding -> failed (an operator must look), lease dropped, with its 'failed' event.
-- With an owner, only while that owner still holds the lease: a holder whose lease ran out
-- must not fail a split another holder may be completing.
WITH failed AS (
    UPDATE payment_splits
    SET status = 'failed', last_error = %(error)s, updated_at = %(now)s, claimed_by = NULL, claimed_at = NULL
    WHERE payment_hash = %(payment_hash)s AND status IN ('paid', 'forwarding')
      AND (%(owner)s::text IS NULL OR claimed_by = %(owner)s::text)
    RETURNING *
), logged AS (
    INSERT INTO payment_events (split_id, event_type, data)
    SELECT id, 'failed', jsonb_build_object('error', last_error) FROM failed
)
SELECT f.*,
       coalesce((SELECT jsonb_agg(to_jsonb(l) ORDER BY l.position)
                 FROM payment_legs l WHERE l.split_id = f.id), '[]'::jsonb) AS legs
FROM failed f

-- name: expire_unpaid
-- See cleanup_expired_payments in 001_initial.sql: never touches a paid split.
SELECT cleanup_expired_payments(%(now)s)

-- name: mark_leg_failed
-- -> failed with the error and when to retry; a succeeded leg is never failed.
-- A payment attempt was counted by start_legs_sending; a failure before sending (the leg's
-- invoice could not be created) counts here, so such a leg also backs off and runs out.
WITH leg AS (
    UPDATE payment_legs
    SET status = 'failed', last_error = %(error)s, next_attempt_at = %(next_attempt_at)s, updated_at = %(now)s,
        attempts = attempts + CASE WHEN status = 'sending' THEN 0 ELSE 1 END
    WHERE id = %(leg_id)s AND status IN ('planned', 'invoiced', 'sending', 'failed')
    RETURNING *
), logged AS (
    INSERT INTO payment_events (split_id, leg_id, event_type, data)
    SELECT split_id, id, 'leg_failed',
           jsonb_build_object('error', last_error, 'attempts', attempts, 'next_attempt_at', next_attempt_at)
    FROM leg
)
SELECT leg.*, s.payment_hash AS split_payment_hash
FROM leg JOIN payment_splits s ON s.id = leg.split_id

-- name: discard_expired_leg_invoice
-- failed with an invoice that can no longer be paid (expired, and for an LNURL leg no payment of
-- it pending or made) -> failed without it, so the next attempt creates a fresh invoice. Only the
-- very invoice that was checked is discarded (payment_hash must match), never a succeeded leg's.
WITH leg AS (
    UPDATE payment_legs
    SET payment_request = NULL, payment_hash = NULL, received_sats = NULL, status = 'failed',
        updated_at = %(now)s
    WHERE id = %(leg_id)s AND payment_hash = %(payment_hash)s AND status IN ('invoiced', 'sending', 'failed')
    RETURNING *
), logged AS (
    INSERT INTO payment_events (split_id, leg_id, event_type, data)
    SELECT split_id, id, 'leg_failed',
           jsonb_build_object('error', 'leg invoice expired; a new one will be created',
                              'expired_payment_hash', %(payment_hash)s::text)
    FROM leg
)
SELECT leg.*, s.payment_hash AS split_payment_hash
FROM leg JOIN payment_splits s ON s.id = leg.split_id

-- name: select_legs_holding_invoices
-- The legs (any split) that store one of these invoices (hashes: an array of payment hashes).
SELECT id, payment_hash FROM payment_legs WHERE payment_hash = ANY(%(hashes)s)

-- name: select_split_events
-- The audit trail of one split, oldest first.
SELECT e.id, e.leg_id, e.event_type, e.data, e.created_at
FROM payment_events e
JOIN payment_splits s ON s.id = e.split_id
WHERE s.payment_hash = %(payment_hash)s
ORDER BY e.id

-- name: select_recipient_stats
SELECT username, total_sats, tip_count, average_sats, largest_sats, smallest_sats, first_tip_at, last_tip_at
FROM tip_recipients_stats
WHERE username = lower(%(username)s)

-- name: claim_split
-- Takes the forwarding lease: only a paid/forwarding/failed split whose lease is free or
-- older than lease_seconds. Concurrent claimers serialise on the row; exactly one wins.
-- With a source (Blink has just reported the split paid), a pending/expired split is marked
-- paid and claimed in this one statement, with its 'paid' event beside 'forwarding_started'.
WITH before AS (
    SELECT id, paid_at IS NOT NULL AS was_paid FROM payment_splits WHERE payment_hash = %(payment_hash)s
), claimed AS (
    UPDATE payment_splits s
    SET status = 'forwarding', paid_at = coalesce(s.paid_at, %(now)s),
        claimed_by = %(owner)s, claimed_at = %(now)s, updated_at = %(now)s
    FROM before
    WHERE s.id = before.id
      AND ((%(source)s::text IS NOT NULL AND s.status IN ('pending', 'expired'))
           OR (s.status IN ('paid', 'forwarding', 'failed')
               AND (s.claimed_by IS NULL
                    OR s.claimed_at < %(now)s - make_interval(secs => %(lease_seconds)s::float8))))
    RETURNING s.*, before.was_paid
), logged AS (
    INSERT INTO payment_events (split_id, event_type, data)
    SELECT id, 'paid', jsonb_build_object('source', %(source)s::text) FROM claimed
    WHERE NOT was_paid AND %(source)s::text IS NOT NULL
    UNION ALL
    SELECT id, 'forwarding_started',
           jsonb_build_object('owner', claimed_by, 'lease_seconds', %(lease_seconds)s::float8)
    FROM claimed
)
SELECT c.*,
       coalesce((SELECT jsonb_agg(to_jsonb(l) ORDER BY l.position)
                 FROM payment_legs l WHERE l.split_id = c.id), '[]'::jsonb) AS legs
FROM claimed c

-- name: record_leg_invoices
-- planned (or failed before any invoice existed) -> invoiced for several legs in one statement,
-- storing each forwarding invoice BEFORE it is paid (invoices: a JSONB array of
-- {leg_id, payment_request, payment_hash, recipient_wallet_id, received_sats}). A leg that
-- already has an invoice keeps it, and its received_sats with it (an LNURL leg's invoice is for
-- the leg minus its fee reserve; a Blink leg's stays NULL until it succeeds with the whole leg).
-- Run with start_legs_sending in one transaction: the invoices are committed before any is paid.
WITH leg AS (
    UPDATE payment_legs l
    SET status = 'invoiced', payment_request = i.payment_request, payment_hash = i.payment_hash,
        recipient_wallet_id = coalesce(i.recipient_wallet_id, l.recipient_wallet_id),
        received_sats = i.received_sats, updated_at = %(now)s
    FROM jsonb_to_recordset(%(invoices)s::jsonb)
        AS i (leg_id bigint, payment_request text, payment_hash text, recipient_wallet_id text,
              received_sats bigint)
    WHERE l.id = i.leg_id AND l.payment_request IS NULL AND l.status IN ('planned', 'failed')
      -- An LNURL server may hand one invoice out twice; one payment must never close two legs, so
      -- it is stored on one leg only (lock_lnurl_invoices ran first in this transaction).
      AND (i.received_sats IS NULL OR NOT EXISTS (
          SELECT 1 FROM payment_legs o WHERE o.payment_hash = i.payment_hash AND o.id <> l.id))
    RETURNING l.*
)
INSERT INTO payment_events (split_id, leg_id, event_type, data)
SELECT split_id, id, 'leg_invoiced',
       jsonb_strip_nulls(jsonb_build_object('kind', kind, 'recipient', recipient, 'sats', sats,
                                            'payment_hash', payment_hash, 'received_sats', received_sats))
FROM leg

-- name: lock_lnurl_invoices
-- Serialises the transactions about to store any of these LNURL invoices (hashes), until commit:
-- record_leg_invoices, the next statement, then sees a copy another transaction committed.
-- Two int4 keys (a key space apart from the migration lock's single bigint); 8 names this use.
SELECT pg_advisory_xact_lock(8, hashtext(h)) FROM unnest(%(hashes)s::text[]) AS h ORDER BY h

-- name: start_legs_sending
-- invoiced/failed (or sending, after a crash: the same invoice is paid again, Blink answers
-- ALREADY_PAID if it went through) -> sending for the legs leg_ids, counting the attempt;
-- returns the legs now sending, each with its stored invoice (the one to pay, whoever recorded it),
-- in position order: legs paid one at a time go base first, whatever order the rows lie on disk.
WITH leg AS (
    UPDATE payment_legs
    SET status = 'sending', attempts = attempts + 1, next_attempt_at = NULL, updated_at = %(now)s
    WHERE id = ANY(%(leg_ids)s) AND status IN ('invoiced', 'failed', 'sending') AND payment_request IS NOT NULL
    RETURNING *
), logged AS (
    INSERT INTO payment_events (split_id, leg_id, event_type, data)
    SELECT split_id, id, 'leg_sending', jsonb_build_object('attempt', attempts) FROM leg
)
SELECT leg.*, s.payment_hash AS split_payment_hash
FROM leg JOIN payment_splits s ON s.id = leg.split_id
ORDER BY leg.position

-- name: mark_legs_succeeded
-- -> succeeded for the legs leg_ids, in one statement: each changed leg's 'leg_paid'
-- event and, per tip recipient, its stats (summed first: one stats row is updated once).
-- fees: a JSONB object {"<leg id>": routing fee paid}, for the legs paid outside Blink.
WITH leg AS (
    UPDATE payment_legs
    SET status = 'succeeded', paid_at = %(now)s, updated_at = %(now)s, last_error = NULL,
        next_attempt_at = NULL,
        -- Inside Blink the recipient gets the whole leg and there is no routing fee; an lnurl
        -- leg's received_sats was stored with its invoice and its fee comes in `fees` (the
        -- constraint insists on both).
        received_sats = coalesce(received_sats, CASE WHEN payout = 'blink' THEN sats END),
        fee_sats = coalesce((%(fees)s::jsonb ->> id::text)::bigint, fee_sats,
                            CASE WHEN payout = 'blink' THEN 0 END)
    WHERE id = ANY(%(leg_ids)s) AND status IN ('invoiced', 'sending', 'failed') AND payment_request IS NOT NULL
    RETURNING *
), logged AS (
    INSERT INTO payment_events (split_id, leg_id, event_type, data)
    SELECT split_id, id, 'leg_paid',
           jsonb_build_object('kind', kind, 'recipient', recipient, 'sats', sats,
                              'received_sats', received_sats, 'fee_sats', fee_sats)
    FROM leg
), stats AS (
    INSERT INTO tip_recipients_stats AS t
        (username, total_sats, tip_count, largest_sats, smallest_sats, first_tip_at, last_tip_at, updated_at)
    SELECT lower(recipient), sum(sats), count(*), max(sats), min(sats), %(now)s, %(now)s, %(now)s
    FROM leg WHERE kind = 'tip'
    GROUP BY lower(recipient)
    -- Every completion locks the stats rows it shares with others in one order (by name): in
    -- the aggregate's own order two completions locked them crosswise and deadlocked.
    ORDER BY lower(recipient)
    ON CONFLICT (username) DO UPDATE SET
        total_sats = t.total_sats + excluded.total_sats,
        tip_count = t.tip_count + excluded.tip_count,
        largest_sats = greatest(t.largest_sats, excluded.largest_sats),
        smallest_sats = least(t.smallest_sats, excluded.smallest_sats),
        first_tip_at = least(t.first_tip_at, excluded.first_tip_at),
        last_tip_at = greatest(t.last_tip_at, excluded.last_tip_at),
        updated_at = excluded.updated_at
)
SELECT leg.*, s.payment_hash AS split_payment_hash
FROM leg JOIN payment_splits s ON s.id = leg.split_id
