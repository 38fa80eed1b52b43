-- Cluster variant of migrations/0007. Placeholders and qualified names as in 0001.
-- The schedules, and one run row per (schedule, closed period), versioned like export_jobs, read with FINAL.
CREATE TABLE IF NOT EXISTS {{database}}.export_schedules_local ON CLUSTER {{cluster}}
(
    schedule_id     String,
    -- The creator's identity key (jwt:<iss>:<sub> or key:<id>): only they see the schedule and its runs.
    user_id         String,
    report_type     LowCardinality(String),
    format          LowCardinality(String),
    -- 'daily' | 'weekly' (ISO weeks, Monday first) | 'monthly'; periods are UTC.
    cadence         LowCardinality(String),
    -- The validated filters as JSON (team_id, service, ...); each run adds the period's start_date / end_date.
    params          String,
    -- '' when no webhook; its host was on WEBHOOK_ALLOWED_HOSTS when the schedule was created.
    webhook_url     String,
    -- HMAC key of X-Tally-Signature, shown to the creator once; kept in clear because signing needs it.
    webhook_secret  String,
    -- The first period reported is the one containing this instant.
    created_at      DateTime64(3, 'UTC'),
    deleted         UInt8,
    version         UInt64
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', version)
-- Serves reads by schedule_id; the owner's list and the scheduler's scan read the (small) table whole.
ORDER BY schedule_id;

-- Sharded by schedule_id: every version of a schedule on one shard, for FINAL.
CREATE TABLE IF NOT EXISTS {{database}}.export_schedules ON CLUSTER {{cluster}}
AS {{database}}.export_schedules_local
ENGINE = Distributed({{cluster}}, {{database}}, export_schedules_local, cityHash64(schedule_id));

CREATE TABLE IF NOT EXISTS {{database}}.export_schedule_runs_local ON CLUSTER {{cluster}}
(
    schedule_id   String,
    -- First and last UTC day of the closed period this run exports.
    period_start  Date,
    period_end    Date,
    -- Deterministic: a hash of (schedule_id, period_start), so every scheduler names the same job.
    job_id        String,
    user_id       String,
    created_at    DateTime64(3, 'UTC')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')
-- Serves GET .../runs (newest period first) and the scheduler's "which periods are done" scan; one row per period.
ORDER BY (schedule_id, period_start)
-- A run is written with a token derived from its job id; replicated tables honour it by default, the window
-- is stated (1000 blocks, a week) so it does not depend on server defaults.
SETTINGS replicated_deduplication_window = 1000, replicated_deduplication_window_seconds = 604800;

-- Sharded by schedule_id, a prefix of the sort key: a period written twice meets its first copy on one shard.
CREATE TABLE IF NOT EXISTS {{database}}.export_schedule_runs ON CLUSTER {{cluster}}
AS {{database}}.export_schedule_runs_local
ENGINE = Distributed({{cluster}}, {{database}}, export_schedule_runs_local, cityHash64(schedule_id));

-- A scheduled job's first row is written with insert_deduplication_token = job_id. Replicated tables honour
-- tokens by default; the window is stated as on one node (1000 blocks) and kept a week, so it does not depend
-- on server defaults. export_jobs shards by job_id, so a retried first row reaches the shard that has it.
ALTER TABLE {{database}}.export_jobs_local ON CLUSTER {{cluster}}
    MODIFY SETTING replicated_deduplication_window = 1000, replicated_deduplication_window_seconds = 604800;
