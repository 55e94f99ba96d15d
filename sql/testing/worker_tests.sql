-- Statements used only by tests/test_worker.py and tests/test_metrics.py.

-- name: select_metric_names
SELECT DISTINCT name FROM system_metrics ORDER BY name
