-- Cluster variant of migrations/0005. Placeholders and qualified names as in 0001.
-- Each shard counts its own logs; logs shard by event_id, so the shards' id sets are disjoint, and
-- uniqExactMerge(ids) through log_counts_hourly unions them exactly at the initiator.
CREATE TABLE IF NOT EXISTS {{database}}.log_counts_hourly_local ON CLUSTER {{cluster}}
(
    hour      DateTime('UTC'),
    severity  Enum8('info' = 1, 'warning' = 2, 'error' = 3),
    service   LowCardinality(String),
    -- event_id of every log in that hour, severity and service: read with uniqExactMerge(ids).
    ids       AggregateFunction(uniqExact, String)
)
ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')
PARTITION BY toYear(hour)
-- Serves system-events paging: an hour range first (newest first), then severity / service filters.
ORDER BY (hour, severity, service)
-- View blocks share the raw insert's token; same window as the raw table.
SETTINGS replicated_deduplication_window = 10000, replicated_deduplication_window_seconds = 604800;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{database}}.log_counts_hourly_mv ON CLUSTER {{cluster}}
TO {{database}}.log_counts_hourly_local AS
SELECT
    toStartOfHour(timestamp) AS hour,
    severity,
    service,
    uniqExactState(event_id) AS ids
FROM {{database}}.log_events_local
GROUP BY hour, severity, service;

-- The public name. The sharding key places the rows of the back-fill below (and any direct insert): a hash
-- of the sort key, so a repeated back-fill meets its first copy on one shard.
CREATE TABLE IF NOT EXISTS {{database}}.log_counts_hourly ON CLUSTER {{cluster}}
AS {{database}}.log_counts_hourly_local
ENGINE = Distributed({{cluster}}, {{database}}, log_counts_hourly_local, cityHash64(hour, severity, service));

-- Back-fill logs stored before this migration, through the public names: it reads every shard (INSERT has no
-- ON CLUSTER) and writes through the Distributed table (synchronously: the client sets
-- distributed_foreground_insert in cluster mode). Idempotent for the same reason as on one node: it adds ids
-- already in the sets, so no count changes.
INSERT INTO {{database}}.log_counts_hourly
SELECT
    toStartOfHour(timestamp) AS hour,
    severity,
    service,
    uniqExactState(event_id) AS ids
FROM {{database}}.log_events
GROUP BY hour, severity, service;
