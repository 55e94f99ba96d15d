-- 002_worker: what the background worker (service/worker.py) needs.
-- Applied by service/store/migrations.py inside one transaction (no BEGIN/COMMIT here).

-- Pending splits are asked at Blink with a per-split backoff, so thousands of open invoices do
-- not hammer Blink: when the worker last asked and how often it has asked.
ALTER TABLE payment_splits
    ADD COLUMN status_checked_at TIMESTAMPTZ,
    ADD COLUMN status_checks     INTEGER NOT NULL DEFAULT 0,
    ADD CONSTRAINT payment_splits_status_checks_non_negative CHECK (status_checks >= 0);

-- The pending-status scan: oldest-checked first among pending splits.
CREATE INDEX payment_splits_pending_checked_idx
    ON payment_splits (coalesce(status_checked_at, created_at)) WHERE status = 'pending';

-- One row per worker process, touched every loop: /api/health reports the freshest beat's age.
CREATE TABLE worker_heartbeats (
    worker_id  TEXT PRIMARY KEY,
    started_at TIMESTAMPTZ NOT NULL,
    beat_at    TIMESTAMPTZ NOT NULL
);

-- An operator's `splits retry` is a state change too: it gets its own audit event type.
ALTER TABLE payment_events DROP CONSTRAINT payment_events_type_allowed;
ALTER TABLE payment_events ADD CONSTRAINT payment_events_type_allowed CHECK (event_type IN (
    'created', 'paid', 'forwarding_started', 'released', 'leg_invoiced', 'leg_sending',
    'leg_paid', 'leg_failed', 'completed', 'failed', 'expired', 'migrated', 'retry_requested'));
