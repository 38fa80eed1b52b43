-- Hourly counting rollup of system logs, so GET /logs/system-events can count matches (total_pages) and find
-- where page N starts without reading every log before it. Counts are exact sets of event_id (uniqExact
-- states), so a re-sent log changes nothing: the rollup is duplicate-proof by itself, like log_events FINAL.
CREATE TABLE IF NOT EXISTS log_counts_hourly
(
    hour      DateTime('UTC'),
    severity  Enum8('info' = 1, 'warning' = 2, 'error' = 3),
    service   LowCardinality(String),
    -- event_id of every log in that hour, severity and service: read with uniqExactMerge(ids).
    ids       AggregateFunction(uniqExact, String)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYear(hour)
-- Serves system-events paging: an hour range first (newest first), then severity / service filters.
ORDER BY (hour, severity, service)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS log_counts_hourly_mv TO log_counts_hourly AS
SELECT
    toStartOfHour(timestamp) AS hour,
    severity,
    service,
    uniqExactState(event_id) AS ids
FROM log_events
GROUP BY hour, severity, service;

-- Back-fill logs stored before this migration. Idempotent: running it again (or racing the view for a log
-- inserted meanwhile) adds ids already in the sets, so no count changes.
INSERT INTO log_counts_hourly
SELECT
    toStartOfHour(timestamp) AS hour,
    severity,
    service,
    uniqExactState(event_id) AS ids
FROM log_events
GROUP BY hour, severity, service;
