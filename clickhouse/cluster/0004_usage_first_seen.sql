-- Cluster variant of migrations/0004. Placeholders and qualified names as in 0001.
-- Each shard keeps the first day it saw of each user; a user whose events sit on several shards has a row on
-- each. total_users (first_day <= end) stays exact: the user's true first day is on or before the date exactly
-- when one of those rows is, and min() merges the same way across shards as across unmerged parts.
CREATE TABLE IF NOT EXISTS {{database}}.usage_first_seen_local ON CLUSTER {{cluster}}
(
    team_id    String,
    service    LowCardinality(String),
    user_id    String,
    first_day  SimpleAggregateFunction(min, Date),
    first_seen SimpleAggregateFunction(min, DateTime64(3, 'UTC'))
)
ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')
-- Serves total_users: filters by team, service, user; every row is read with first_day <= end_date.
ORDER BY (team_id, service, user_id)
-- View blocks share the raw insert's token; same window as the raw table.
SETTINGS replicated_deduplication_window = 10000, replicated_deduplication_window_seconds = 604800;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{database}}.usage_first_seen_mv ON CLUSTER {{cluster}}
TO {{database}}.usage_first_seen_local AS
SELECT
    team_id,
    service,
    user_id,
    min(toDate(timestamp)) AS first_day,
    min(timestamp) AS first_seen
FROM {{database}}.usage_events_local
GROUP BY team_id, service, user_id;

-- The public name; the sharding key only places direct inserts (see usage_daily in 0003).
CREATE TABLE IF NOT EXISTS {{database}}.usage_first_seen ON CLUSTER {{cluster}}
AS {{database}}.usage_first_seen_local
ENGINE = Distributed({{cluster}}, {{database}}, usage_first_seen_local, cityHash64(team_id, service, user_id));
