-- Scheduled exports (POST /reports/export-schedules): the schedules, and one run row per (schedule, closed
-- period) naming the export job made for it. Both are versioned like export_jobs and read with FINAL.
CREATE TABLE IF NOT EXISTS export_schedules
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
ENGINE = ReplacingMergeTree(version)
-- Serves reads by schedule_id; the owner's list and the scheduler's scan read the (small) table whole.
ORDER BY schedule_id;

CREATE TABLE IF NOT EXISTS export_schedule_runs
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
ENGINE = ReplacingMergeTree
-- Serves GET .../runs (newest period first) and the scheduler's "which periods are done" scan; one row per period.
ORDER BY (schedule_id, period_start)
SETTINGS non_replicated_deduplication_window = 1000;

-- A scheduled job's first row is written with insert_deduplication_token = job_id; this window lets a plain
-- MergeTree honour that token (state changes carry unique versions, so no real write ever looks duplicate).
ALTER TABLE export_jobs MODIFY SETTING non_replicated_deduplication_window = 1000;
