-- Cluster variant of migrations/0006. Placeholders and qualified names as in 0001.
-- export_jobs_local: one row per state change, the newest version of a job_id wins (ReplacingMergeTree(version)
-- within a shard, so every version of a job must be on one shard: see the sharding key below).
CREATE TABLE IF NOT EXISTS {{database}}.export_jobs_local ON CLUSTER {{cluster}}
(
    job_id           String,
    -- The creator's identity key (jwt:<iss>:<sub> or key:<id>): only they see the job.
    user_id          String,
    -- UTC day of creation: the quota counts a user's jobs per day.
    day              Date,
    idempotency_key  String,
    report_type      LowCardinality(String),
    format           LowCardinality(String),
    -- The validated filters as JSON (start_date, end_date, team_id, ...), replayed by the worker.
    params           String,
    status           Enum8('queued' = 1, 'processing' = 2, 'completed' = 3, 'failed' = 4),
    -- Claims so far; a lease that expires counts as a lost attempt.
    attempts         UInt8,
    lease_owner      String,
    lease_expires_at DateTime64(3, 'UTC'),
    rows_written     UInt64,
    bytes            UInt64,
    sha256           String,
    -- The stored file, relative to the export directory; never built from request input.
    file_name        String,
    -- When the file is removed and its links stop working (completed jobs).
    expires_at       DateTime64(3, 'UTC'),
    error            String,
    created_at       DateTime64(3, 'UTC'),
    updated_at       DateTime64(3, 'UTC'),
    version          UInt64
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', version)
-- Serves status reads and worker updates by job_id; the quota and claim scans read the (small) table whole.
ORDER BY job_id;

-- Sharded by job_id: all versions of a job meet on one shard, where FINAL (run per shard) keeps the newest.
CREATE TABLE IF NOT EXISTS {{database}}.export_jobs ON CLUSTER {{cluster}}
AS {{database}}.export_jobs_local
ENGINE = Distributed({{cluster}}, {{database}}, export_jobs_local, cityHash64(job_id));
