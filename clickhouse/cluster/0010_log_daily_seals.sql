-- Cluster variant of migrations/0010. Placeholders and qualified names as in 0001.
-- Logs shard by event_id, so a cell's id sets on the shards are disjoint and its counter is the sum of the
-- shards' counters: through the Distributed tables a seal pairs the union of the shards' ids with the sum of
-- their counters, and while that sum is unchanged no shard's cell has changed (each counter only grows).
CREATE TABLE IF NOT EXISTS {{database}}.log_cells_daily_local ON CLUSTER {{cluster}}
(
    day       Date,
    severity  Enum8('info' = 1, 'warning' = 2, 'error' = 3),
    service   LowCardinality(String),
    -- event_id of every log of that day, severity and service: read with uniqExactMerge(ids).
    ids       AggregateFunction(uniqExact, String),
    -- Rows inserted into the cell so far, re-sent copies included; only grows.
    inserted  SimpleAggregateFunction(sum, UInt64)
)
ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')
PARTITION BY toYear(day)
-- Serves system-events counting: a day range first (newest first), then severity / service filters.
ORDER BY (day, severity, service)
-- View blocks share the raw insert's token; same window as the raw table.
SETTINGS replicated_deduplication_window = 10000, replicated_deduplication_window_seconds = 604800;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{database}}.log_cells_daily_mv ON CLUSTER {{cluster}}
TO {{database}}.log_cells_daily_local AS
SELECT
    toDate(timestamp) AS day,
    severity,
    service,
    uniqExactState(event_id) AS ids,
    count() AS inserted
FROM {{database}}.log_events_local
GROUP BY day, severity, service;

CREATE TABLE IF NOT EXISTS {{database}}.log_cells_daily ON CLUSTER {{cluster}}
AS {{database}}.log_cells_daily_local
ENGINE = Distributed({{cluster}}, {{database}}, log_cells_daily_local, cityHash64(day, severity, service));

-- Back-fill from the hourly rollup through the public names (see 0005); idempotent as on one node.
INSERT INTO {{database}}.log_cells_daily
SELECT toDate(hour) AS day, severity, service, uniqExactMergeState(ids) AS ids, toUInt64(0) AS inserted
FROM {{database}}.log_counts_hourly
GROUP BY day, severity, service;

CREATE TABLE IF NOT EXISTS {{database}}.log_day_seals_local ON CLUSTER {{cluster}}
(
    day       Date,
    severity  Enum8('info' = 1, 'warning' = 2, 'error' = 3),
    service   LowCardinality(String),
    -- Distinct event_id of the cell when sealed.
    logs      UInt64,
    -- The cell's counter (sum over the shards of log_cells_daily.inserted) read in the same scan as `logs`.
    inserted  UInt64,
    sealed_at DateTime64(3, 'UTC')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', sealed_at)
PARTITION BY toYear(day)
-- Serves the read's join on (cell, counter): a day range first, like log_cells_daily.
ORDER BY (day, severity, service);

-- Sharded by cell, so every seal of a cell meets its predecessors on one shard.
CREATE TABLE IF NOT EXISTS {{database}}.log_day_seals ON CLUSTER {{cluster}}
AS {{database}}.log_day_seals_local
ENGINE = Distributed({{cluster}}, {{database}}, log_day_seals_local, cityHash64(day, severity, service));
