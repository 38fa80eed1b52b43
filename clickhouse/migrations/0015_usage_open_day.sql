-- Ranges that end on a day still taking events. Sealed pairs (0011) need a day's counters to have settled, so
-- under live traffic the last day of a family (today) is never sealed, and every range that reached it was
-- summed from usage_daily: 0.2 s for 30 days and 2.2 s for 365 at 100M events. For that one day the service
-- keeps, per point, the day of its entity's previous point at each level, computed once per point as points
-- arrive, and a read adds the open day's points whose previous point is before its range (looking up the few
-- points the service has not reached yet itself).

-- usage_points' points again, ordered by day: one day's points are a short key range (in usage_points they are
-- spread over every entity). Filled by its view from usage_points, and once from usage_points by the service's
-- back-fill (coverage family 'by_day') for what was stored before this migration.
CREATE TABLE IF NOT EXISTS usage_points_by_day
(
    family    Enum8('seen' = 1, 'active' = 2, 'session' = 3),
    day       Date,
    team_id   String,
    service   LowCardinality(String),
    entity    String
)
ENGINE = ReplacingMergeTree
PARTITION BY toYear(day)
-- Serves the open day's points, whole or for one team / service: the family, the day, the filter's key.
ORDER BY (family, day, team_id, service, entity)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS usage_points_by_day_mv
TO usage_points_by_day AS
SELECT family, day, team_id, service, entity
FROM usage_points
WHERE kind = 1;

-- The previous points of the open day's points, written by the service. A row holds while the family's
-- counters summed over the days before `day` (`base`) are what they were when it was computed: any insert
-- into an earlier day moves them, and the rows under the old base are left behind.
CREATE TABLE IF NOT EXISTS usage_open_points
(
    family            Enum8('seen' = 1, 'active' = 2, 'session' = 3),
    day               Date,
    base              UInt64,
    team_id           String,
    service           LowCardinality(String),
    entity            String,
    -- The day of the entity's last point before `day` (1970-01-01: none): anywhere, in this point's team, in
    -- its service, in both (the four levels of usage_pairs).
    prev_all          Date,
    prev_team         Date,
    prev_service      Date,
    prev_team_service Date
)
ENGINE = ReplacingMergeTree
-- Serves the reads of one open day under its base, whole or for one team / service.
ORDER BY (family, day, base, team_id, service, entity);

ALTER TABLE usage_points_coverage MODIFY COLUMN family Enum8('seen' = 1, 'active' = 2, 'session' = 3, 'user_days' = 4, 'by_day' = 5);
