-- Cluster variant of migrations/0011. Placeholders and qualified names as in 0001.
-- Each shard keeps the points of its own raw events (an entity may have points on several shards) and its own
-- counter rows: through the Distributed tables the sealer's DISTINCT folds the shards' copies of a point and
-- the counters add up, and each shard's counter only grows, so an unchanged sum means no shard changed.
-- Pairs, seals and coverage shard by their key, so FINAL folds a pair written twice on the shard that has both.
-- Exact distinct counts over any day range without merging sets at read time. A distinct count over [a, b] is
-- the number of (entity, day) points in the range whose entity's previous point is before a: each entity counts
-- once, at its first point in the range. So per day it is enough to keep how many points have their previous
-- point on each earlier day ("pairs"), and a range sums a few thousand small rows, whatever the traffic.
--
-- usage_points keeps the points (deduplicated by the key: a re-sent event adds nothing) and, in the same part
-- as each insert's points, a counter row per (family, day). A day's pairs depend only on points on or before it,
-- so they hold while the counters of those days are unchanged: the service seals days with the counters'
-- running sum ("prefix") it read before computing them, and a read uses a day's pairs only under its current
-- prefix. Any insert (ingestion, POST /events, a back-fill straight into usage_events) moves the prefix of its
-- day and of every later day, and those days are answered from usage_daily until sealed again.
CREATE TABLE IF NOT EXISTS {{database}}.usage_points_local ON CLUSTER {{cluster}}
(
    -- seen: any usage event (total_users). active: session_start, session_end or activity (active_users).
    -- session: session_start, the entity being the session_id (total_sessions).
    family    Enum8('seen' = 1, 'active' = 2, 'session' = 3),
    -- 0: the (family, day) counter row (entity, team_id and service empty); 1: a point.
    kind      UInt8,
    -- user_id, or session_id for the session family.
    entity    String,
    day       Date,
    team_id   String,
    service   LowCardinality(String),
    -- Counter rows: events inserted for the family on that day, re-sent copies included (only grows). Points: 0.
    inserted  SimpleAggregateFunction(sum, UInt64)
)
ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')
PARTITION BY toYear(day)
-- Counter rows first (a short key range read by every report), then each entity's points together, day
-- ordered: the sealer walks an entity's days to find each point's previous one.
ORDER BY (family, kind, entity, day, team_id, service)
-- The view's blocks carry the raw insert's token; same window as the raw tables.
SETTINGS replicated_deduplication_window = 10000, replicated_deduplication_window_seconds = 604800;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{database}}.usage_points_mv ON CLUSTER {{cluster}}
TO {{database}}.usage_points_local AS
SELECT family, kind, entity, day, t AS team_id, s AS service, if(kind = 0, count(), 0) AS inserted
FROM (
    SELECT
        arrayJoin(arrayConcat(['seen'], if(type != 'user_registered', ['active'], []),
            if(type = 'session_start', ['session'], []))) AS f,
        CAST(f, 'Enum8(\'seen\' = 1, \'active\' = 2, \'session\' = 3)') AS family,
        arrayJoin([0, 1]) AS kind,
        if(kind = 1, if(f = 'session', session_id, user_id), '') AS entity,
        toDate(timestamp) AS day,
        if(kind = 1, team_id, '') AS t,
        if(kind = 1, service, '') AS s
    FROM {{database}}.usage_events_local
)
GROUP BY family, kind, entity, day, team_id, service;

-- Direct inserts (the service's back-fill) place points by entity, counter rows by day.
CREATE TABLE IF NOT EXISTS {{database}}.usage_points ON CLUSTER {{cluster}}
AS {{database}}.usage_points_local
ENGINE = Distributed({{cluster}}, {{database}}, usage_points_local, cityHash64(family, entity, day));

-- The pairs of each sealed (family, day), under the prefix they were computed at, at four levels: all
-- (team_id = service = ''), per team, per service, per (team, service). prev = 1970-01-01: no earlier point.
CREATE TABLE IF NOT EXISTS {{database}}.usage_pairs_local ON CLUSTER {{cluster}}
(
    family    Enum8('seen' = 1, 'active' = 2, 'session' = 3),
    level     Enum8('all' = 1, 'team' = 2, 'service' = 3, 'team_service' = 4),
    team_id   String,
    service   LowCardinality(String),
    day       Date,
    prefix    UInt64,
    prev      Date,
    -- Points on `day` whose entity's previous point (at this level) is on `prev`.
    n         UInt64
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')
PARTITION BY toYear(day)
-- Serves usage-summary and timeseries: one family and level, the filter's key, then a day range.
ORDER BY (family, level, team_id, service, day, prefix, prev)
SETTINGS replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS {{database}}.usage_pairs ON CLUSTER {{cluster}}
AS {{database}}.usage_pairs_local
ENGINE = Distributed({{cluster}}, {{database}}, usage_pairs_local, cityHash64(family, level, team_id, service, day, prefix, prev));

-- A sealed (family, day): its pairs are complete under this prefix. Written after the pairs.
CREATE TABLE IF NOT EXISTS {{database}}.usage_day_seals_local ON CLUSTER {{cluster}}
(
    family    Enum8('seen' = 1, 'active' = 2, 'session' = 3),
    day       Date,
    prefix    UInt64,
    sealed_at DateTime64(3, 'UTC')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', sealed_at)
-- Serves the reports' validity check: every seal of a family, day ordered.
ORDER BY (family, day, prefix);

CREATE TABLE IF NOT EXISTS {{database}}.usage_day_seals ON CLUSTER {{cluster}}
AS {{database}}.usage_day_seals_local
ENGINE = Distributed({{cluster}}, {{database}}, usage_day_seals_local, cityHash64(family, day, prefix));

-- From which day a family's points are complete: written once the service has back-filled usage_points from
-- the data stored before this migration (usage_daily for users; the raw events for sessions, which
-- RETENTION_DAYS may have dropped: session pairs then start after the first raw day still whole).
CREATE TABLE IF NOT EXISTS {{database}}.usage_points_coverage_local ON CLUSTER {{cluster}}
(
    family    Enum8('seen' = 1, 'active' = 2, 'session' = 3, 'user_days' = 4),
    from_day  Date,
    done_at   DateTime64(3, 'UTC')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', done_at)
ORDER BY family;

CREATE TABLE IF NOT EXISTS {{database}}.usage_points_coverage ON CLUSTER {{cluster}}
AS {{database}}.usage_points_coverage_local
ENGINE = Distributed({{cluster}}, {{database}}, usage_points_coverage_local, cityHash64(family));

-- See migrations/0011: the daily rollup ordered by user. Each shard rolls up its own events, as usage_daily.
CREATE TABLE IF NOT EXISTS {{database}}.usage_user_days_local ON CLUSTER {{cluster}}
(
    user_id   String,
    day       Date,
    team_id   String,
    service   LowCardinality(String),
    sessions  AggregateFunction(uniqExact, String),
    active    SimpleAggregateFunction(max, UInt8)
)
ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')
PARTITION BY toYear(day)
-- Serves usage-summary and timeseries filtered by user: the user first, then a day range.
ORDER BY (user_id, day, team_id, service)
SETTINGS replicated_deduplication_window = 10000, replicated_deduplication_window_seconds = 604800;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{database}}.usage_user_days_mv ON CLUSTER {{cluster}}
TO {{database}}.usage_user_days_local AS
SELECT
    user_id,
    toDate(timestamp) AS day,
    team_id,
    service,
    uniqExactStateIf(session_id, type = 'session_start') AS sessions,
    max(toUInt8(type != 'user_registered')) AS active
FROM {{database}}.usage_events_local
GROUP BY user_id, day, team_id, service;

CREATE TABLE IF NOT EXISTS {{database}}.usage_user_days ON CLUSTER {{cluster}}
AS {{database}}.usage_user_days_local
ENGINE = Distributed({{cluster}}, {{database}}, usage_user_days_local, cityHash64(user_id));
