-- Statements for system_metrics (samples written in batches) and its pruning.

-- name: insert_metric
-- One sample; call with executemany (Statement.many) to write a batch in one pipeline.
INSERT INTO system_metrics (name, value, tags, recorded_at)
VALUES (%(name)s, %(value)s, %(tags)s, %(recorded_at)s)

-- name: cleanup_old_metrics
SELECT cleanup_old_metrics(%(days)s)
