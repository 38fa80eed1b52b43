-- Webhook deliveries of scheduled exports: the outbox. One row per state change of a finished job's webhook,
-- the newest version of a job_id wins (read with FINAL), so a delivery outlives the process that started it:
-- any dispatcher finds finished jobs of schedules with a webhook_url that have no row yet, and pending rows
-- whose next attempt is due, claims one under a lease (as export workers claim jobs) and records each attempt.
CREATE TABLE IF NOT EXISTS webhook_deliveries
(
    -- The finished export job (export_jobs.job_id); one delivery per job.
    job_id            String,
    -- X-Tally-Delivery, '<job_id>:<completed|failed>': the same on every attempt, receivers deduplicate on it.
    delivery_id       String,
    schedule_id       String,
    -- The schedule's owner (jwt:<iss>:<sub> or key:<id>).
    user_id           String,
    -- 'export.completed' | 'export.failed'.
    event             LowCardinality(String),
    -- The target when the delivery was first claimed (the schedule's webhook_url).
    url               String,
    state             Enum8('pending' = 1, 'delivered' = 2, 'gave_up' = 3),
    -- Attempts made so far.
    attempts          UInt32,
    -- When the job finished: the retry time (WEBHOOK_RETRY_FOR_SECONDS) counts from here.
    finished_at       DateTime64(3, 'UTC'),
    -- A pending delivery is not tried again before this.
    next_attempt_at   DateTime64(3, 'UTC'),
    -- The dispatcher attempting it now, and until when its claim holds (an expired claim is taken over).
    lease_owner       String,
    lease_expires_at  DateTime64(3, 'UTC'),
    -- HTTP status of the last answer (0: none, e.g. refused or timed out) and why the last attempt failed.
    last_status       UInt16,
    last_error        String,
    created_at        DateTime64(3, 'UTC'),
    updated_at        DateTime64(3, 'UTC'),
    version           UInt64
)
ENGINE = ReplacingMergeTree(version)
-- Serves the claim's read-back and updates by job_id; the dispatchers' due scan reads the (small) table whole.
ORDER BY job_id;
