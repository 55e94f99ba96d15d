-- Merchant reports (service/reports/). Every statement is scoped to ONE merchant by
-- merchant_key_fingerprint (its key's fingerprints under each configured secret, usually one)
-- and to a period [start, end) on created_at, so it runs on the index
-- payment_splits_merchant_created_idx (fingerprint, created_at), never a table scan.
-- A sale's day is its created_at in the report's IANA zone %(tz)s.
-- Only completed splits count as forwarded money; the other statuses are reported apart.

-- name: report_merchant_known
-- True when at least one sale was made with this key fingerprint (the report's login check).
SELECT EXISTS (
    SELECT 1 FROM payment_splits WHERE merchant_key_fingerprint = ANY(%(fingerprints)s)
)

-- name: report_daily_totals
-- Per local day, status and display currency: sales, sats and display amounts, and the routing
-- fees paid out of the legs (Lightning Address payouts; 0 inside Blink).
SELECT (s.created_at AT TIME ZONE %(tz)s)::date AS day,
       s.status,
       s.display_currency,
       count(*) AS sales,
       count(*) FILTER (WHERE s.tip_sats > 0) AS tipped_sales,
       sum(s.invoice_sats)::bigint AS invoice_sats,
       sum(s.base_sats)::bigint AS base_sats,
       sum(s.tip_sats)::bigint AS tip_sats,
       sum(s.base_amount_display) AS base_amount_display,
       sum(s.tip_amount_display) AS tip_amount_display,
       coalesce(sum(fees.fee_sats), 0)::bigint AS fee_sats
FROM payment_splits s
LEFT JOIN LATERAL (SELECT sum(l.fee_sats) AS fee_sats FROM payment_legs l WHERE l.split_id = s.id) fees
    ON true
WHERE s.merchant_key_fingerprint = ANY(%(fingerprints)s)
  AND s.created_at >= %(start)s AND s.created_at < %(end)s
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3

-- name: report_tips_by_day
-- Per local day and tip recipient: the tip legs of completed sales (what each one received).
SELECT (s.created_at AT TIME ZONE %(tz)s)::date AS day,
       lower(l.recipient) AS username,
       count(*) AS tips,
       sum(l.sats)::bigint AS tip_sats,
       min(s.created_at) AS first_tip_at,
       max(s.created_at) AS last_tip_at
FROM payment_splits s
JOIN payment_legs l ON l.split_id = s.id AND l.kind = 'tip'
WHERE s.merchant_key_fingerprint = ANY(%(fingerprints)s)
  AND s.status = 'completed'
  AND s.created_at >= %(start)s AND s.created_at < %(end)s
GROUP BY 1, 2
ORDER BY 1, 2

-- name: report_sales_page
-- One page of sales (every status) in (created_at, id) order, after the keyset
-- (after_created_at, after_id); the first page passes (start, 0). Tip legs ride along as JSON.
SELECT s.id, s.created_at, s.payment_hash, s.status, s.invoice_sats, s.base_sats, s.tip_sats,
       s.tip_percent, s.display_currency, s.base_amount_display, s.tip_amount_display,
       s.merchant_wallet_id, s.memo, s.paid_at, s.processed_at,
       (SELECT coalesce(sum(l.fee_sats), 0) FROM payment_legs l WHERE l.split_id = s.id)::bigint AS fee_sats,
       coalesce((SELECT jsonb_agg(jsonb_build_object('username', lower(l.recipient), 'sats', l.sats)
                                  ORDER BY l.position)
                 FROM payment_legs l
                 WHERE l.split_id = s.id AND l.kind = 'tip'), '[]'::jsonb) AS tips
FROM payment_splits s
WHERE s.merchant_key_fingerprint = ANY(%(fingerprints)s)
  AND s.created_at >= %(after_created_at)s
  AND s.created_at < %(end)s
  AND (s.created_at, s.id) > (%(after_created_at)s, %(after_id)s)
ORDER BY s.created_at, s.id
LIMIT %(limit)s

-- name: report_payouts_page
-- One page of the payout log: the legs of the merchant's paid sales (pending and expired sales
-- pay nothing out), newest sale first, in (created_at, leg id) descending order before the
-- keyset (before_created_at, before_id); the first page passes (end, 0). status: 'all',
-- 'open' (not yet delivered) or 'failed' (the last attempt failed).
SELECT l.id AS leg_id, s.created_at, s.payment_hash, s.status AS sale_status, l.kind, l.recipient, l.sats,
       l.fee_sats, l.status, l.attempts, l.last_error, l.next_attempt_at, l.paid_at
FROM payment_splits s
JOIN payment_legs l ON l.split_id = s.id
WHERE s.merchant_key_fingerprint = ANY(%(fingerprints)s)
  AND s.created_at >= %(start)s
  AND s.created_at <= %(before_created_at)s
  AND s.created_at < %(end)s
  AND (s.created_at, l.id) < (%(before_created_at)s, %(before_id)s)
  AND s.status IN ('paid', 'forwarding', 'completed', 'failed')
  AND (%(status)s = 'all'
       OR (%(status)s = 'open' AND l.status <> 'succeeded')
       OR (%(status)s = 'failed' AND l.status = 'failed'))
ORDER BY s.created_at DESC, l.id DESC
LIMIT %(limit)s
