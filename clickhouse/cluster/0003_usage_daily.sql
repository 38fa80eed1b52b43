-- Cluster variant of migrations/0003. Placeholders and qualified names as in 0001.
-- usage_daily_local is fed by a view on usage_events_local: each shard rolls up its own events. Because raw
-- events shard by event_id, one (day, team, service, user) key has a row on several shards; that is exact,
-- since a query through usage_daily merges the shards' states at the initiator (uniqExactMerge unions the
-- session sets, max of the flags), as it already merges unmerged parts on one node.
CREATE TABLE IF NOT EXISTS {{database}}.usage_daily_local ON CLUSTER {{cluster}}
(
    day       Date,
    team_id   String,
    service   LowCardinality(String),
    user_id   String,
    -- session_id of every session_start that day: exact, and a re-sent id adds nothing.
    sessions  AggregateFunction(uniqExact, String),
    -- 1 when the user had a session_start, session_end or activity event that day.
    active    SimpleAggregateFunction(max, UInt8)
)
ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')
PARTITION BY toYear(day)
-- Serves usage-summary and timeseries: a day range first, then team / service / user filters.
ORDER BY (day, team_id, service, user_id)
-- The view's blocks are deduplicated with the raw insert's token (deduplicate_blocks_in_dependent_materialized_views),
-- so a retried batch adds nothing here either; same window as the raw table.
SETTINGS replicated_deduplication_window = 10000, replicated_deduplication_window_seconds = 604800;

-- Local to local: the view fires on the replica that receives the shard's insert, and its rows replicate with
-- usage_daily_local like any insert.
CREATE MATERIALIZED VIEW IF NOT EXISTS {{database}}.usage_daily_mv ON CLUSTER {{cluster}}
TO {{database}}.usage_daily_local AS
SELECT
    toDate(timestamp) AS day,
    team_id,
    service,
    user_id,
    uniqExactStateIf(session_id, type = 'session_start') AS sessions,
    max(toUInt8(type != 'user_registered')) AS active
FROM {{database}}.usage_events_local
GROUP BY day, team_id, service, user_id;

-- The public name. Rows written by the view stay on the shard of their events; this sharding key only places
-- rows inserted through usage_daily itself (none today): a hash of the sort key, so a repeated insert meets
-- its first copy and merges away.
CREATE TABLE IF NOT EXISTS {{database}}.usage_daily ON CLUSTER {{cluster}}
AS {{database}}.usage_daily_local
ENGINE = Distributed({{cluster}}, {{database}}, usage_daily_local, cityHash64(day, team_id, service, user_id));
