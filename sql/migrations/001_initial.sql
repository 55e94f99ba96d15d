-- 001_initial: the hybrid store's tables, views and maintenance functions.
-- Postgres is the source of truth; money is BIGINT satoshis everywhere.
-- Applied by service/store/migrations.py inside one transaction (no BEGIN/COMMIT here).

-- One row per POS invoice, with or without a tip.
CREATE TABLE payment_splits (
    id                       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    payment_hash             TEXT NOT NULL,
    payment_request          TEXT NOT NULL,
    invoice_sats             BIGINT NOT NULL,
    base_sats                BIGINT NOT NULL,
    tip_sats                 BIGINT NOT NULL,
    tip_percent              NUMERIC(9, 4),
    merchant_wallet_id       TEXT NOT NULL,
    -- AES-256-GCM token ("v1:<key id>:<base64>") bound to payment_hash; never the plaintext key.
    merchant_key_ciphertext  TEXT NOT NULL,
    -- HMAC-SHA256 of the key: groups a merchant's sales without revealing the key.
    merchant_key_fingerprint TEXT NOT NULL,
    tip_recipients           JSONB NOT NULL DEFAULT '[]'::jsonb,
    display_currency         TEXT NOT NULL DEFAULT 'BTC',
    base_amount_display      NUMERIC(20, 8),
    tip_amount_display       NUMERIC(20, 8),
    memo                     TEXT,
    environment              TEXT NOT NULL,
    status                   TEXT NOT NULL DEFAULT 'pending',
    client_total_sats        BIGINT,
    created_at               TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at               TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at               TIMESTAMPTZ NOT NULL,
    paid_at                  TIMESTAMPTZ,
    processed_at             TIMESTAMPTZ,
    last_error               TEXT,
    -- The forwarding lease (DESIGN 3): who forwards this split and since when.
    claimed_by               TEXT,
    claimed_at               TIMESTAMPTZ,

    CONSTRAINT payment_splits_payment_hash_key UNIQUE (payment_hash),
    CONSTRAINT payment_splits_payment_hash_format CHECK (payment_hash ~ '^[0-9a-f]{64}$'),
    CONSTRAINT payment_splits_amounts_non_negative
        CHECK (invoice_sats >= 0 AND base_sats >= 0 AND tip_sats >= 0),
    CONSTRAINT payment_splits_base_plus_tip_is_invoice CHECK (base_sats + tip_sats = invoice_sats),
    CONSTRAINT payment_splits_tip_percent_non_negative CHECK (tip_percent IS NULL OR tip_percent >= 0),
    CONSTRAINT payment_splits_client_total_non_negative
        CHECK (client_total_sats IS NULL OR client_total_sats >= 0),
    CONSTRAINT payment_splits_status_allowed
        CHECK (status IN ('pending', 'paid', 'forwarding', 'completed', 'expired', 'failed')),
    CONSTRAINT payment_splits_tip_recipients_is_array CHECK (jsonb_typeof(tip_recipients) = 'array'),
    CONSTRAINT payment_splits_lease_complete CHECK ((claimed_by IS NULL) = (claimed_at IS NULL)),
    CONSTRAINT payment_splits_completed_has_processed_at
        CHECK (status <> 'completed' OR processed_at IS NOT NULL),
    CONSTRAINT payment_splits_paid_states_have_paid_at
        CHECK (status NOT IN ('paid', 'forwarding', 'completed') OR paid_at IS NOT NULL)
);

CREATE INDEX payment_splits_created_at_idx ON payment_splits (created_at);
CREATE INDEX payment_splits_merchant_created_idx ON payment_splits (merchant_key_fingerprint, created_at);
-- The worker's scans: unpaid splits to expire, paid splits still to forward.
CREATE INDEX payment_splits_pending_expiry_idx ON payment_splits (expires_at) WHERE status = 'pending';
CREATE INDEX payment_splits_unfinished_idx ON payment_splits (status, paid_at)
    WHERE status IN ('paid', 'forwarding', 'failed');

-- One row per outgoing payment: the base to the merchant, one per tip recipient.
CREATE TABLE payment_legs (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    split_id            BIGINT NOT NULL REFERENCES payment_splits (id),
    kind                TEXT NOT NULL,
    -- The merchant wallet id for a base leg, the Blink username for a tip leg.
    recipient           TEXT NOT NULL,
    recipient_wallet_id TEXT,
    sats                BIGINT NOT NULL,
    position            INTEGER NOT NULL,
    status              TEXT NOT NULL DEFAULT 'planned',
    -- The forwarding invoice, stored before it is paid so a retry pays the same one.
    payment_request     TEXT,
    payment_hash        TEXT,
    attempts            INTEGER NOT NULL DEFAULT 0,
    last_error          TEXT,
    next_attempt_at     TIMESTAMPTZ,
    paid_at             TIMESTAMPTZ,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),

    CONSTRAINT payment_legs_split_kind_recipient_key UNIQUE (split_id, kind, recipient),
    CONSTRAINT payment_legs_kind_allowed CHECK (kind IN ('base', 'tip')),
    CONSTRAINT payment_legs_sats_positive CHECK (sats > 0),
    CONSTRAINT payment_legs_position_non_negative CHECK (position >= 0),
    CONSTRAINT payment_legs_attempts_non_negative CHECK (attempts >= 0),
    CONSTRAINT payment_legs_status_allowed
        CHECK (status IN ('planned', 'invoiced', 'sending', 'succeeded', 'failed')),
    CONSTRAINT payment_legs_payment_hash_format
        CHECK (payment_hash IS NULL OR payment_hash ~ '^[0-9a-f]{64}$'),
    -- Nothing is sent or settled without its invoice on record.
    CONSTRAINT payment_legs_invoice_before_sending
        CHECK (status IN ('planned', 'failed') OR payment_request IS NOT NULL),
    CONSTRAINT payment_legs_succeeded_has_paid_at CHECK (status <> 'succeeded' OR paid_at IS NOT NULL)
);

-- The worker's retry scan: failed/stuck legs by due time.
CREATE INDEX payment_legs_status_next_attempt_idx ON payment_legs (status, next_attempt_at);
CREATE INDEX payment_legs_recipient_idx ON payment_legs (recipient);

-- Append-only audit trail of every state change. data is JSONB without secrets.
CREATE TABLE payment_events (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    split_id   BIGINT NOT NULL REFERENCES payment_splits (id),
    leg_id     BIGINT REFERENCES payment_legs (id),
    event_type TEXT NOT NULL,
    data       JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),

    CONSTRAINT payment_events_type_allowed CHECK (event_type IN (
        'created', 'paid', 'forwarding_started', 'released', 'leg_invoiced', 'leg_sending',
        'leg_paid', 'leg_failed', 'completed', 'failed', 'expired', 'migrated'))
);

CREATE INDEX payment_events_split_idx ON payment_events (split_id, id);
CREATE INDEX payment_events_created_at_idx ON payment_events (created_at);

CREATE FUNCTION payment_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'payment_events is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER payment_events_no_update_or_delete
    BEFORE UPDATE OR DELETE ON payment_events
    FOR EACH ROW EXECUTE FUNCTION payment_events_append_only();

-- Per tip recipient totals, updated in the transaction that settles a tip leg.
CREATE TABLE tip_recipients_stats (
    username      TEXT PRIMARY KEY,
    total_sats    BIGINT NOT NULL,
    tip_count     BIGINT NOT NULL,
    average_sats  NUMERIC GENERATED ALWAYS AS (round(total_sats::numeric / tip_count, 4)) STORED,
    largest_sats  BIGINT NOT NULL,
    smallest_sats BIGINT NOT NULL,
    first_tip_at  TIMESTAMPTZ NOT NULL,
    last_tip_at   TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),

    CONSTRAINT tip_recipients_stats_counts_positive
        CHECK (tip_count > 0 AND total_sats > 0 AND smallest_sats > 0),
    CONSTRAINT tip_recipients_stats_range CHECK (smallest_sats <= largest_sats AND largest_sats <= total_sats)
);

CREATE INDEX tip_recipients_stats_total_idx ON tip_recipients_stats (total_sats DESC);

-- Named numeric samples (cache hit/miss, processing times, error counts), written in batches.
CREATE TABLE system_metrics (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        TEXT NOT NULL,
    value       DOUBLE PRECISION NOT NULL,
    tags        JSONB NOT NULL DEFAULT '{}'::jsonb,
    recorded_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX system_metrics_name_recorded_idx ON system_metrics (name, recorded_at);
CREATE INDEX system_metrics_recorded_idx ON system_metrics (recorded_at);

-- Views: reporting shapes. None exposes the key ciphertext.
CREATE VIEW recent_payments AS
SELECT s.id, s.payment_hash, s.status, s.invoice_sats, s.base_sats, s.tip_sats, s.tip_percent,
       s.merchant_wallet_id, s.merchant_key_fingerprint, s.display_currency, s.memo, s.environment,
       jsonb_array_length(s.tip_recipients) AS tip_recipient_count,
       s.created_at, s.paid_at, s.processed_at, s.last_error
FROM payment_splits s
WHERE s.created_at > now() - interval '24 hours'
ORDER BY s.created_at DESC;

CREATE VIEW tip_leaderboard AS
SELECT rank() OVER (ORDER BY total_sats DESC) AS rank,
       username, total_sats, tip_count, average_sats, largest_sats, smallest_sats,
       first_tip_at, last_tip_at
FROM tip_recipients_stats
ORDER BY total_sats DESC, username;

CREATE VIEW daily_payment_stats AS
SELECT date_trunc('day', created_at) AS day,
       count(*) AS payments,
       count(*) FILTER (WHERE status = 'completed') AS completed,
       count(*) FILTER (WHERE status = 'expired') AS expired,
       count(*) FILTER (WHERE status = 'failed') AS failed,
       count(*) FILTER (WHERE tip_sats > 0) AS with_tip,
       coalesce(sum(invoice_sats) FILTER (WHERE status = 'completed'), 0) AS completed_sats,
       coalesce(sum(tip_sats) FILTER (WHERE status = 'completed'), 0) AS completed_tip_sats,
       round(avg(invoice_sats) FILTER (WHERE status = 'completed'), 2) AS average_completed_sats
FROM payment_splits
GROUP BY 1
ORDER BY 1 DESC;

CREATE VIEW active_payments AS
SELECT s.id, s.payment_hash, s.status, s.invoice_sats, s.base_sats, s.tip_sats,
       s.merchant_wallet_id, s.created_at, s.expires_at, s.paid_at, s.claimed_by, s.claimed_at,
       s.last_error,
       (SELECT count(*) FROM payment_legs l WHERE l.split_id = s.id) AS legs,
       (SELECT count(*) FROM payment_legs l WHERE l.split_id = s.id AND l.status = 'succeeded')
           AS legs_succeeded
FROM payment_splits s
WHERE s.status IN ('pending', 'paid', 'forwarding')
ORDER BY s.created_at DESC;

-- Expires ONLY unpaid pending splits past their expiry; a paid split is never expired.
-- Writes one 'expired' event per split; returns how many were expired.
CREATE FUNCTION cleanup_expired_payments(as_of TIMESTAMPTZ DEFAULT now()) RETURNS INTEGER
LANGUAGE sql AS $$
    WITH expired AS (
        UPDATE payment_splits
        SET status = 'expired', updated_at = as_of
        WHERE status = 'pending' AND paid_at IS NULL AND expires_at < as_of
        RETURNING id, expires_at
    ), logged AS (
        INSERT INTO payment_events (split_id, event_type, data)
        SELECT id, 'expired', jsonb_build_object('expires_at', expires_at, 'source', 'cleanup')
        FROM expired
        RETURNING 1
    )
    SELECT count(*)::integer FROM logged;
$$;

-- Deletes metric samples older than `days` days; returns how many were deleted.
CREATE FUNCTION cleanup_old_metrics(days INTEGER) RETURNS INTEGER
LANGUAGE sql AS $$
    WITH deleted AS (
        DELETE FROM system_metrics WHERE recorded_at < now() - make_interval(days => days)
        RETURNING 1
    )
    SELECT count(*)::integer FROM deleted;
$$;
