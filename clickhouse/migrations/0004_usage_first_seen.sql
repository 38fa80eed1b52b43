-- First-seen rollup: when each user first appeared in a team and service. total_users as of a date is the
-- number of distinct users whose first day is on or before it; min() is idempotent under replays.
CREATE TABLE IF NOT EXISTS usage_first_seen
(
    team_id    String,
    service    LowCardinality(String),
    user_id    String,
    first_day  SimpleAggregateFunction(min, Date),
    first_seen SimpleAggregateFunction(min, DateTime64(3, 'UTC'))
)
ENGINE = AggregatingMergeTree
-- Serves total_users: filters by team, service, user; every row is read with first_day <= end_date.
ORDER BY (team_id, service, user_id)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS usage_first_seen_mv TO usage_first_seen AS
SELECT
    team_id,
    service,
    user_id,
    min(toDate(timestamp)) AS first_day,
    min(timestamp) AS first_seen
FROM usage_events
GROUP BY team_id, service, user_id;
