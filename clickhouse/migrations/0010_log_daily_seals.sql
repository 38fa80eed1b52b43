-- Exact log counts that do not grow with stored logs. log_counts_hourly answers "how many logs" by merging
-- sets of event_id, so a year of logs merged every millions of ids per request. Here each (day, severity,
-- service) cell keeps its id set and a counter of rows ever inserted into it, and a sealer stores the cell's
-- exact count beside the counter value it was computed with; a read takes the sealed count while the counter
-- still says the same, and merges the set of any cell that changed since (through any path: the counter is
-- kept by the view, so a back-fill straight into log_events reopens its days like ingestion does).
CREATE TABLE IF NOT EXISTS log_cells_daily
(
    day       Date,
    severity  Enum8('info' = 1, 'warning' = 2, 'error' = 3),
    service   LowCardinality(String),
    -- event_id of every log of that day, severity and service: read with uniqExactMerge(ids).
    ids       AggregateFunction(uniqExact, String),
    -- Rows inserted into the cell so far, re-sent copies included. It only grows, and it is written in the
    -- same part as the ids it counts, so one read of both is a consistent pair.
    inserted  SimpleAggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYear(day)
-- Serves system-events counting: a day range first (newest first), then severity / service filters.
ORDER BY (day, severity, service)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS log_cells_daily_mv TO log_cells_daily AS
SELECT
    toDate(timestamp) AS day,
    severity,
    service,
    uniqExactState(event_id) AS ids,
    count() AS inserted
FROM log_events
GROUP BY day, severity, service;

-- Back-fill from the hourly rollup, which outlives the raw logs under RETENTION_DAYS. Idempotent: the ids are
-- already in the sets on a second run, and 0 rows are counted (the counter only has to change on new data).
INSERT INTO log_cells_daily
SELECT toDate(hour) AS day, severity, service, uniqExactMergeState(ids) AS ids, toUInt64(0) AS inserted
FROM log_counts_hourly
GROUP BY day, severity, service;

-- A cell's exact count as of a counter value. Valid while the cell's counter still equals `inserted`; a later
-- seal of the same cell replaces it after merges, and either one is right while its counter matches.
CREATE TABLE IF NOT EXISTS log_day_seals
(
    day       Date,
    severity  Enum8('info' = 1, 'warning' = 2, 'error' = 3),
    service   LowCardinality(String),
    -- Distinct event_id of the cell when sealed.
    logs      UInt64,
    -- The cell's counter (sum of log_cells_daily.inserted) read in the same scan as `logs`.
    inserted  UInt64,
    sealed_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(sealed_at)
PARTITION BY toYear(day)
-- Serves the read's join on (cell, counter): a day range first, like log_cells_daily.
ORDER BY (day, severity, service);
