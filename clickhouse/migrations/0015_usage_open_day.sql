-- Ranges that end on days still taking events. Sealed pairs (0011) need a day's counters to have settled, so
-- under live traffic the last days of a family (today, and yesterday while its late events trickle in) are not
-- sealed, and every range that reached them was summed from usage_daily: 0.2 s for 30 days and 2.2 s for 365 at
-- 100M events. For those open days the service keeps, per point, the day of its entity's last point before
-- them at each level, computed once per point as points arrive, and a read adds the open days' entities whose
-- first point in its range is on an open day (looking up the few points the service has not reached yet).

-- usage_points again, ordered by day: one day's points are a short key range (in usage_points they are spread
-- over every entity). Its counter rows (kind 0) come with the points in the same part, so a read can tell from
-- them alone whether a day's points have changed since it last looked: they only grow, and a day's points never
-- change without them. Filled by its view from usage_points, and once from usage_points by the service's
-- back-fill (coverage family 'by_day') for what was stored before this migration (its counters are then not
-- usage_points' own, only a number that moves whenever the day's points do).
CREATE TABLE IF NOT EXISTS usage_points_by_day
(
    family    Enum8('seen' = 1, 'active' = 2, 'session' = 3),
    day       Date,
    -- 0: the (family, day) counter row; 1: a point.
    kind      UInt8,
    team_id   String,
    service   LowCardinality(String),
    entity    String,
    inserted  SimpleAggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYear(day)
-- Serves the open days' points, whole or for one team / service, and their counters: family, day, kind, key.
ORDER BY (family, day, kind, team_id, service, entity)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS usage_points_by_day_mv
TO usage_points_by_day AS
SELECT family, day, kind, team_id, service, entity, inserted
FROM usage_points;

-- The earlier points of the open days' points, written by the service. The open days of a family are its last
-- days from the first one not sealed; a row holds while the family's counters summed over the days before them
-- (`base`) are what they were when it was computed: any insert into an earlier day moves them, and the rows
-- under the old base are left behind.
CREATE TABLE IF NOT EXISTS usage_open_points
(
    family            Enum8('seen' = 1, 'active' = 2, 'session' = 3),
    day               Date,
    base              UInt64,
    team_id           String,
    service           LowCardinality(String),
    entity            String,
    -- The day of the entity's last point before the open days (1970-01-01: none): anywhere, in this point's
    -- team, in its service, in both (the four levels of usage_pairs).
    prev_all          Date,
    prev_team         Date,
    prev_service      Date,
    prev_team_service Date
)
ENGINE = ReplacingMergeTree
-- Serves the reads of the open days under their base, whole or for one team / service.
ORDER BY (family, day, base, team_id, service, entity);

ALTER TABLE usage_points_coverage MODIFY COLUMN family Enum8('seen' = 1, 'active' = 2, 'session' = 3, 'user_days' = 4, 'by_day' = 5);
