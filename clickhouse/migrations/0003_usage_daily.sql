-- Daily usage rollup: one row per (day, team, service, user) after merges. Its columns are idempotent
-- aggregates (exact sets of session ids, a max flag), so replaying any event never changes an answer.
CREATE TABLE IF NOT EXISTS usage_daily
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
ENGINE = AggregatingMergeTree
PARTITION BY toYear(day)
-- Serves usage-summary and timeseries: a day range first, then team / service / user filters.
ORDER BY (day, team_id, service, user_id)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS usage_daily_mv TO usage_daily AS
SELECT
    toDate(timestamp) AS day,
    team_id,
    service,
    user_id,
    uniqExactStateIf(session_id, type = 'session_start') AS sessions,
    max(toUInt8(type != 'user_registered')) AS active
FROM usage_events
GROUP BY day, team_id, service, user_id;
