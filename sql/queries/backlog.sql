-- What the alerts watch: money that is stuck or needs an operator. One round trip; every part
-- reads the partial index payment_splits_unfinished_idx (paid, forwarding, failed).

-- name: backlog_figures
-- failed_splits: splits out of leg attempts; oldest_unforwarded_seconds: since the oldest paid
-- split still not completed was paid (0 when none); legs_retrying: failed legs of those splits
-- waiting for their next attempt.
SELECT
    (SELECT count(*) FROM payment_splits WHERE status = 'failed')::integer AS failed_splits,
    (SELECT coalesce(extract(epoch FROM %(now)s - min(paid_at)), 0)
     FROM payment_splits WHERE status IN ('paid', 'forwarding'))::float8 AS oldest_unforwarded_seconds,
    (SELECT count(*)
     FROM payment_splits s JOIN payment_legs l ON l.split_id = s.id
     WHERE s.status IN ('paid', 'forwarding') AND l.status = 'failed')::integer AS legs_retrying
